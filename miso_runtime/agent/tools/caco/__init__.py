"""Caco's own tools (display, applets, agent to agent), beside the file and shell tools every agent has."""
