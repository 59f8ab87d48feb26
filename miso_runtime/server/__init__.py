"""HTTP only: the app factory, auth, SSE and WebSocket helpers, and one face per contract.

Faces parse a request, call a service and render its answer; they never touch SQL and hold no
logic that another face would need.
"""
