"""Agent tasks (the Maria contract): tasks that own a working directory and run an agent in a process of their own."""
