"""The LiveKit side outside the agent: the local server, a room client (demo, tests, control
requests, tokens) and a worker run as a child process."""
