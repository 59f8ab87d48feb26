"""Coding agents in tmux inside git worktrees (schmux contract): config, workspaces, sessions, terminals."""
