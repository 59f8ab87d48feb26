"""The runtime: every service of one sidecar, assembled from the settings.

The server and gunicorn build one :class:`Runtime` and hand it to the app factory; building
it starts no process. :meth:`Runtime.start` starts the workers (the server does, once it is
serving) and :meth:`Runtime.stop` stops them. Nothing here imports Flask or gevent.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import platformdirs

from workers.protocol.base import WorkerSpec
from workers.rpc import RpcClient
from workers.supervisor import RestartPolicy, Supervisor

from . import __version__, constants
from .agents.branches import Branches
from .agents.config import AgentsConfigStore
from .agents.github_client import GitHubClient
from .agents.nudgenik import NudgeNik
from .agents.oneshot import OneShot
from .agents.pull_requests import PullRequestCache, PullRequests
from .agents.service import AgentsService
from .agents.terminal_relay import TerminalRelay
from .analysis.service import AnalysisService
from .analysis.settings import UmapUserConfig
from .auth import AdminTokenSource, TokenService, load_admin_token
from .auth.github_login import GitHubLogin, GitHubOAuth
from .auth.login_config import load_login_config
from .bus import EventBus
from .chat.catalog import ModelCatalog as ChatCatalog
from .chat.providers.local_chat import LocalProvider
from .chat.providers.registry import ProviderRegistry
from .chat.service import ChatService
from .config import Settings, secret_text
from .dnd.config import DoNotDisturbConfig
from .dnd.service import DndService
from .errors import MisoError
from .hooks.rules import SavedHooks
from .hooks.service import HookService
from .iroh.service import IrohService
from .iroh.store import IrohAuthStore
from .labels.service import LabelService
from .llm.catalog import ModelCatalog as GgufCatalog
from .llm.config import LlmConfigStore
from .llm.downloads import DownloadManager
from .llm.engine import LocalLLM
from .llm.service import LlmService
from .lsl.config import LslConfig
from .lsl.service import LslService
from .neuro.embedding.catalog import EncoderCatalog
from .neuro.embedding.service import EmbeddingService
from .neuro.embedding.settings import ExgModelConfig, InferenceDevice, ReembedConfig
from .neuro.history import HistoryService
from .neuro.service import NeuroService
from .neuro.settings import EpochConfig, FilterConfig, WatchdogConfig, WsConfig
from .screenshots.config import ScreenshotConfig
from .screenshots.service import ScreenshotService
from .search.eeg_search import EegSearch
from .settings_files import SettingsFile
from .sleep.service import SleepService
from .sleep.settings import SleepConfig
from .store import ConversationStore, TokenRepository, open_database
from .store.database import ConnectionPerThread
from .store.eeg import DeviceRepository, EpochRepository, SessionRepository
from .tasks.model_choice import ProviderAccess
from .tasks.service import TaskService
from .tasks.settings import TasksConfig
from .workbench.service import Workbench
from .workbench.sessions import FACE as CACO_FACE
from .workbench.sessions import CacoSessions, models_from_catalog

logger = logging.getLogger(__name__)

LLM_WORKER = WorkerSpec("llm", "workers.llm_worker:run")
CAPTURE_WORKER_TARGET = "workers.capture_worker:run"
EMBED_WORKER_TARGET = "workers.embed_worker:run"
ANALYSIS_WORKER_TARGET = "workers.analysis_worker:run"
AGENTS_WORKER_TARGET = "workers.agents_worker:run"
STAGING_WORKER_TARGET = "workers.staging_worker:run"
SCREENSHOT_WORKER_TARGET = "workers.screenshot_worker:run"
IROH_WORKER_TARGET = "workers.iroh_worker:run"


def restart_policy(config: WatchdogConfig) -> RestartPolicy:
    """The supervisor's restart policy that ``/v1/settings/daemon-watchdog`` describes."""
    return RestartPolicy(
        enabled=config.enabled,
        first_s=config.initial_backoff_secs,
        factor=config.backoff_factor,
        cap_s=config.max_backoff_secs,
        stable_after_s=config.stable_after_secs,
    )


@dataclass
class Runtime:
    settings: Settings
    tokens: TokenService
    admin_token_source: AdminTokenSource
    conversations: ConversationStore
    chat: ChatService
    catalog: ChatCatalog
    bus: EventBus
    supervisor: Supervisor
    llm: LlmService
    downloads: DownloadManager
    neuro: NeuroService
    history: HistoryService
    ws_config: SettingsFile[WsConfig]
    watchdog: SettingsFile[WatchdogConfig]
    agents_config: AgentsConfigStore
    agents: AgentsService
    terminals: TerminalRelay
    embeddings: EmbeddingService
    search: EegSearch
    labels: LabelService
    #: Hook rules (checked in the embed worker), their log and the editor's suggestions.
    hooks: HookService
    #: Focus-driven Do Not Disturb: follows the live frames, turns the desktop's DND on and off.
    dnd: DndService
    analysis: AnalysisService
    sleep: SleepService
    tasks: TaskService
    workbench: Workbench
    caco: CacoSessions
    #: NudgeNik and the branch routes: one-shot questions to the chat models or agent CLIs.
    nudgenik: NudgeNik
    branches: Branches
    #: The schmux dashboard's GitHub login (``access_control``), as configured at start.
    login: GitHubLogin
    #: The pull requests of the configured GitHub repos: discovery, cache, checkout for review.
    pull_requests: PullRequests
    #: Lab Streaming Layer: discovery, the paired streams, auto-connect and the idle timeout.
    lsl: LslService
    #: Periodic screen captures (the ``screenshots`` worker), their OCR text, search and files.
    screenshots: ScreenshotService
    #: Remote access through iroh: TOTP credentials, registered clients, the tunnel's state.
    iroh: IrohService
    version: str = __version__
    #: The port this runtime serves on, once it does (task processes reach the local model through it).
    serving_port: int | None = None
    started_at_ms: int = field(default_factory=lambda: int(time.time() * 1000))

    def start(self) -> None:
        """Start the workers, and load the configured model when autostart is on."""
        self.supervisor.start_all()
        self.dnd.start()
        self.embeddings.start_idle_loop()
        self.search.start()
        self.tasks.start()
        self.caco.tasks.start()
        self.nudgenik.start_checker()
        self.pull_requests.start_polling(self.settings.pr_poll_interval_s)  # 0: only when asked
        if self.llm.config.get().autostart:
            try:
                self.llm.start(None)
            except Exception as exc:  # noqa: BLE001 - a model that does not load must not stop the runtime
                logger.warning("autostart of the local model failed: %s", exc)

    def stop(self) -> None:
        """End the EEG session cleanly, pause downloads and stop every worker (within about 10 s)."""
        self.neuro.stop()
        self.dnd.stop()  # gives back the desktop's DND if we hold it
        self.embeddings.stop()
        self.downloads.shutdown()
        self.tasks.stop()
        self.caco.tasks.stop()
        self.nudgenik.stop_checker()
        self.pull_requests.stop_polling()
        self.supervisor.stop_all()

    def set_watchdog(self, changes: dict) -> WatchdogConfig:
        config = self.watchdog.update(changes)
        self.supervisor.set_policy(restart_policy(config))
        return config


def _publish(bus: EventBus, event_type: str, payload: dict) -> None:
    bus.publish(event_type, payload)


def build_runtime(settings: Settings) -> Runtime:
    """Open the store, run migrations and wire the services for ``settings``."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings.database_path)
    configured_token = secret_text(settings.auth_token)
    admin_token, source = load_admin_token(configured_token, settings.data_dir)
    conversations = ConversationStore(db)
    bus = EventBus()

    models_dir = settings.models_dir
    models_dir.mkdir(parents=True, exist_ok=True)
    supervisor = Supervisor()
    llm_worker = supervisor.add(LLM_WORKER)
    llm_config = LlmConfigStore(settings.data_dir / constants.LLM_CONFIG_FILE_NAME)
    engine = LocalLLM(llm_worker, lambda kind, payload: _publish(bus, kind, payload), llm_config.get().max_queue)
    supervisor.on_event("llm", engine.handle_event)
    supervisor.on_exit("llm", engine.handle_exit)
    gguf_catalog = GgufCatalog(models_dir)
    gguf_catalog.refresh()
    llm = LlmService(engine, gguf_catalog, llm_config, models_dir)

    watchdog = SettingsFile(settings.data_dir / constants.WATCHDOG_CONFIG_FILE_NAME, WatchdogConfig)
    supervisor.set_policy(restart_policy(watchdog.get()))
    capture_worker = supervisor.add(
        WorkerSpec(
            "capture",
            CAPTURE_WORKER_TARGET,
            {
                "database_path": str(settings.database_path),
                "brainflow_log": str(settings.log_dir / constants.BRAINFLOW_LOG_FILE_NAME),
                "lsl_config_path": str(settings.data_dir / constants.LSL_CONFIG_FILE_NAME),
            },
        )
    )
    sessions = SessionRepository(db)
    lsl = LslService(SettingsFile(settings.data_dir / constants.LSL_CONFIG_FILE_NAME, LslConfig))
    neuro = NeuroService(
        capture_worker,
        sessions,
        DeviceRepository(db),
        SettingsFile(settings.data_dir / constants.FILTER_CONFIG_FILE_NAME, FilterConfig),
        SettingsFile(settings.data_dir / constants.EPOCH_CONFIG_FILE_NAME, EpochConfig),
        settings.data_dir,
        bus.publish,
        lsl_config=lambda: lsl.config,
    )
    lsl.on_change(neuro.lsl_changed)
    neuro.recover_interrupted()
    supervisor.on_event("capture", neuro.handle_event)
    supervisor.on_exit("capture", neuro.handle_exit)
    history = HistoryService(
        sessions, EpochRepository(db), settings.data_dir, lambda: neuro.running_session_id, neuro.pipeline_config
    )

    agents_config = AgentsConfigStore(
        settings.data_dir / constants.AGENTS_CONFIG_FILE_NAME,
        settings.data_dir / constants.AGENTS_DEFAULT_WORKSPACES_DIR_NAME,
    )
    agents_worker = supervisor.add(
        WorkerSpec(
            "agents",
            AGENTS_WORKER_TARGET,
            {
                "config_file": str(settings.data_dir / constants.AGENTS_CONFIG_FILE_NAME),
                "default_workspace_path": str(settings.data_dir / constants.AGENTS_DEFAULT_WORKSPACES_DIR_NAME),
                "workspaces_file": str(settings.data_dir / constants.WORKSPACES_FILE_NAME),
                "clones_dir": str(settings.data_dir / constants.REPO_CLONES_DIR_NAME),
                "sessions_file": str(settings.data_dir / constants.AGENT_SESSIONS_FILE_NAME),
                "conflicts_file": str(settings.data_dir / constants.AGENT_CONFLICTS_FILE_NAME),
                "overlays_dir": str(settings.data_dir / constants.OVERLAYS_DIR_NAME),
                "previews_file": str(settings.data_dir / constants.PREVIEWS_FILE_NAME),
                "tmux_socket": settings.tmux_socket,
                "remote_hosts_file": str(settings.data_dir / constants.REMOTE_HOSTS_FILE_NAME),
                "remote_ready_timeout_s": settings.remote_ready_timeout_s,
            },
        )
    )
    embeddings, search, labels, analysis, hooks = _wire_embeddings(settings, db, supervisor, bus, neuro)
    sleep = _wire_sleep(settings, supervisor, bus, neuro)
    for name in ("llm", "capture", "agents", "embed", "analysis", "staging", "screenshots"):
        supervisor.on_exit(name, lambda name, code: _publish(bus, "worker:exited", {"name": name, "exit_code": code}))
    agents_rpc = RpcClient(agents_worker, "agents", error=MisoError)
    agents = AgentsService(agents_rpc, agents_config, bus.publish)
    agents.remote_ready_timeout_s = settings.remote_ready_timeout_s
    supervisor.on_event("agents", agents_rpc.handle_event)
    supervisor.on_event("agents", agents.handle_event)
    supervisor.on_exit("agents", agents_rpc.handle_exit)
    terminals = TerminalRelay(agents_worker)
    supervisor.on_event("agents", terminals.handle_event)
    supervisor.on_exit("agents", terminals.handle_exit)

    registry = ProviderRegistry.from_settings(settings, local=LocalProvider(llm))
    chat = ChatService(conversations, registry, bus, settings.provider, settings.model)
    holder: dict[str, Runtime] = {}
    serving_port = lambda: holder["runtime"].serving_port  # noqa: E731 - known once the server listens
    screenshots = _wire_screenshots(settings, supervisor, bus, neuro, labels, serving_port)
    tasks = _wire_tasks(settings, conversations, llm, chat, admin_token, serving_port)
    workbench = Workbench(
        data_dir=settings.data_dir,
        workspace_root=(settings.caco_root or Path.cwd()).resolve(),
        database_path=settings.database_path,
        default_model=lambda: chat.default_model().id,
    )
    catalog = ChatCatalog(registry, chat.default_model)
    caco = _wire_caco(tasks, workbench, catalog, admin_token, serving_port)
    oneshot = OneShot(registry, chat.default_model, agents_config.get, agents_config.secrets.model_secrets)
    runtime = Runtime(
        settings=settings,
        tokens=TokenService(admin_token, TokenRepository(db)),
        admin_token_source=source,
        conversations=conversations,
        chat=chat,
        catalog=catalog,
        bus=bus,
        supervisor=supervisor,
        llm=llm,
        downloads=DownloadManager(models_dir, lambda kind, payload: _publish(bus, kind, payload)),
        neuro=neuro,
        history=history,
        ws_config=SettingsFile(settings.data_dir / constants.WS_CONFIG_FILE_NAME, WsConfig),
        watchdog=watchdog,
        agents_config=agents_config,
        agents=agents,
        terminals=terminals,
        embeddings=embeddings,
        search=search,
        labels=labels,
        hooks=hooks,
        dnd=DndService(SettingsFile(settings.data_dir / constants.DND_CONFIG_FILE_NAME, DoNotDisturbConfig), bus),
        analysis=analysis,
        sleep=sleep,
        tasks=tasks,
        workbench=workbench,
        caco=caco,
        nudgenik=NudgeNik(agents, agents_config, oneshot),
        branches=Branches(agents, agents_config, oneshot),
        login=_wire_login(settings, agents_config),
        pull_requests=PullRequests(
            agents,
            agents_config,
            PullRequestCache(settings.data_dir / constants.PULL_REQUESTS_FILE_NAME),
            lambda: GitHubClient(settings.github_api_url, web_url=settings.github_web_url),
        ),
        lsl=lsl,
        screenshots=screenshots,
        iroh=_wire_iroh(settings, supervisor, serving_port),
    )
    holder["runtime"] = runtime
    return runtime


def _wire_iroh(settings: Settings, supervisor: Supervisor, serving_port) -> IrohService:
    """Remote access: the credentials always; the ``iroh`` worker (the endpoint) only when enabled."""
    bridge_secret = secrets.token_urlsafe(32)  # shared with the worker only, new at every start
    worker = None
    if settings.iroh_enabled:
        worker = supervisor.add(
            WorkerSpec(
                "iroh",
                IROH_WORKER_TARGET,
                {
                    "secret_key_path": str(settings.data_dir / constants.IROH_SECRET_KEY_FILE_NAME),
                    "relay": settings.iroh_relay,
                    "bind_addr": settings.iroh_bind_addr,
                    "bridge_secret": bridge_secret,
                },
            )
        )
    service = IrohService(
        IrohAuthStore(settings.data_dir / constants.IROH_AUTH_FILE_NAME), worker, bridge_secret, serving_port
    )
    if worker is not None:
        supervisor.on_event("iroh", service.handle_event)
        supervisor.on_exit("iroh", service.handle_exit)
    return service


def _wire_login(settings: Settings, agents_config: AgentsConfigStore) -> GitHubLogin:
    """The dashboard login; with it on, the dashboard's build must be served too (it is what it guards)."""
    config = load_login_config(agents_config.get(), agents_config.secrets)
    if config.enabled and settings.pages_schmux is None:
        missing = "the schmux dashboard's build (pages_schmux, MISO_PAGES_SCHMUX) is required: the login guards it"
        config = replace(config, problems=(*config.problems, missing))
    return GitHubLogin(config, GitHubOAuth(settings.github_web_url, settings.github_api_url))


def _wire_tasks(
    settings: Settings,
    conversations: ConversationStore,
    llm: LlmService,
    chat: ChatService,
    admin_token: str,
    serving_port,
) -> TaskService:
    """Agent tasks: their model choice reaches each provider as the chat does, the local model through our API."""

    def local_base_url() -> str | None:
        port = serving_port()
        return f"http://127.0.0.1:{port}/v1" if port else None

    access = ProviderAccess(
        openai_key=secret_text(settings.openai_api_key),
        openai_base_url=settings.openai_base_url,
        anthropic_key=secret_text(settings.anthropic_api_key),
        anthropic_base_url=settings.anthropic_base_url,
        ollama_host=settings.ollama_host,
        local_base_url=local_base_url,
        local_token=admin_token,
        local_context_tokens=lambda: llm.config.get().n_ctx,
        default_model=chat.default_model,
        local_model_name=llm.default_model_name,
    )
    config = SettingsFile(settings.data_dir / constants.TASKS_CONFIG_FILE_NAME, TasksConfig)
    return TaskService(conversations, config, access)


def _wire_caco(
    maria: TaskService, workbench: Workbench, catalog: ChatCatalog, admin_token: str, serving_port
) -> CacoSessions:
    """Caco's sessions: agent tasks of their own face, on the same providers and settings as Maria's."""

    def places() -> dict[str, object]:
        port = serving_port()
        return {
            "database_path": str(workbench.database_path),
            "applets_dir": str(workbench.applets.root),
            "outputs_dir": str(workbench.outputs.root),
            "server_url": f"http://127.0.0.1:{port}" if port else None,
            "token": admin_token,
        }

    tasks = TaskService(
        maria.conversations, maria.config, maria.access, face=CACO_FACE, profile="caco", workbench=places
    )
    return CacoSessions(tasks, workbench, lambda: models_from_catalog(catalog.snapshot()))


def _text_embedder() -> object:
    """The offline text embedder, imported on first use (its import takes a while)."""
    from .labels.text_embedder import default_text_embedder

    return default_text_embedder()


def _wire_embeddings(
    settings: Settings, db: object, supervisor: Supervisor, bus: EventBus, neuro: NeuroService
) -> tuple[EmbeddingService, EegSearch, LabelService, AnalysisService, HookService]:
    """The embed and analysis workers and the services of embeddings, search, labels, the Brain
    Nebula and hooks."""
    data_dir = settings.data_dir
    numba_cache = Path(platformdirs.user_cache_dir("miso-runtime")) / constants.NUMBA_CACHE_DIR_NAME
    embed_worker = supervisor.add(
        WorkerSpec(
            "embed",
            EMBED_WORKER_TARGET,
            {
                "database_path": str(settings.database_path),
                "data_dir": str(data_dir),
                "hook_command_timeout_s": settings.hook_command_timeout_s,
            },
        )
    )
    analysis_worker = supervisor.add(
        WorkerSpec(
            "analysis",
            ANALYSIS_WORKER_TARGET,
            {
                "database_path": str(settings.database_path),
                "data_dir": str(data_dir),
                # Shared by every data dir of this user: the compiled code depends only on the install.
                "numba_cache_dir": str(numba_cache),
            },
        )
    )
    store = ConnectionPerThread(settings.database_path)
    embeddings = EmbeddingService(
        embed_worker,
        store,
        EncoderCatalog(data_dir),
        SettingsFile(data_dir / constants.EXG_MODEL_CONFIG_FILE_NAME, ExgModelConfig),
        SettingsFile(data_dir / constants.REEMBED_CONFIG_FILE_NAME, ReembedConfig),
        SettingsFile(data_dir / constants.EXG_DEVICE_CONFIG_FILE_NAME, InferenceDevice),
        bus.publish,
        lambda: neuro.running_session_id is not None,
    )
    supervisor.on_event("capture", embeddings.handle_capture_event)
    supervisor.on_event("embed", embeddings.handle_event)
    supervisor.on_exit("embed", embeddings.handle_exit)
    analysis = AnalysisService(
        analysis_worker,
        store,
        SettingsFile(data_dir / constants.UMAP_CONFIG_FILE_NAME, UmapUserConfig),
        data_dir,
        lambda: embeddings.encoder,
        bus.publish,
    )
    search = EegSearch(settings.database_path, data_dir, analysis.request_build)
    supervisor.on_event("analysis", analysis.handle_event)
    supervisor.on_exit("analysis", analysis.handle_exit)
    supervisor.on_exit("analysis", lambda _name, _code: search.building.clear())
    analysis.on_worker_started(search.worker_started)
    analysis.on_build_finished(search.build_finished)
    embeddings.add_listener(lambda encoder, _ids: search.maybe_schedule_soon(encoder))
    labels = LabelService(settings.database_path, _text_embedder)
    hooks = HookService(
        SettingsFile(data_dir / constants.HOOKS_FILE_NAME, SavedHooks),
        ConnectionPerThread(settings.database_path),
        embed_worker,
        bus.publish,
        labels.text_model,
    )
    supervisor.on_event("embed", hooks.handle_event)
    return embeddings, search, labels, analysis, hooks


def _wire_sleep(settings: Settings, supervisor: Supervisor, bus: EventBus, neuro: NeuroService) -> SleepService:
    """The staging worker and the sleep service; a session's end reaches it after the neuro service's."""
    staging_worker = supervisor.add(
        WorkerSpec("staging", STAGING_WORKER_TARGET, {"database_path": str(settings.database_path)})
    )
    sleep = SleepService(
        staging_worker,
        ConnectionPerThread(settings.database_path),
        SettingsFile(settings.data_dir / constants.SLEEP_CONFIG_FILE_NAME, SleepConfig),
        settings.data_dir,
        bus.publish,
        lambda: neuro.running_session_id,
    )
    supervisor.on_event("capture", sleep.handle_capture_event)
    supervisor.on_event("staging", sleep.handle_event)
    supervisor.on_exit("staging", sleep.handle_exit)
    return sleep


def _wire_screenshots(
    settings: Settings,
    supervisor: Supervisor,
    bus: EventBus,
    neuro: NeuroService,
    labels: LabelService,
    serving_port,
) -> ScreenshotService:
    """The screenshots worker and its service; the EEG session reaches it after the neuro service's view."""
    screenshots_dir = settings.data_dir / constants.SCREENSHOTS_DIR_NAME
    worker = supervisor.add(
        WorkerSpec(
            "screenshots",
            SCREENSHOT_WORKER_TARGET,
            {"database_path": str(settings.database_path), "screenshots_dir": str(screenshots_dir)},
        )
    )
    service = ScreenshotService(
        worker,
        SettingsFile(settings.data_dir / constants.SCREENSHOT_CONFIG_FILE_NAME, ScreenshotConfig),
        settings.database_path,
        screenshots_dir,
        lambda: neuro.running_session_id is not None,
        labels.text_model,
        bus.publish,
        serving_port,
    )
    supervisor.on_event("screenshots", service.handle_event)
    supervisor.on_exit("screenshots", service.handle_exit)
    # Registered after the neuro service's handlers, so the session it sees is already updated.
    supervisor.on_event("capture", service.session_changed)
    supervisor.on_exit("capture", service.session_changed)
    return service
