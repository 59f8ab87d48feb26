"""The agent loop: a conversation that alternates model turns and tool calls until the model stops.

Provider-neutral and free of Flask and gevent, so that it runs inside a task's worker process
(Maria tasks) and can be reused by other faces (Caco sessions).
"""
