"""Caco's workbench: applets, the applet state, display outputs, the workspace's files and preferences."""
