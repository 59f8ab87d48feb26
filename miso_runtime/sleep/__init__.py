"""Sleep staging: YASA on recordings, the skill-daemon's threshold rule, statistics and the hypnogram."""
