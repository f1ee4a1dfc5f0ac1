"""``kdedge serve``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kdedge.cli.console import info
from kdedge.cli.options import open_runtime, runtime_options, teacher_options


@click.command("serve")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--log",
    "log_target",
    metavar="PATH|-",
    help="Write tiered request logs (JSON lines) to PATH, or '-' for stderr.",
)
@click.option(
    "--log-mode",
    type=click.Choice(["tiered", "incident"]),
    default="tiered",
    show_default=True,
    help="incident: log everything, texts included (canaries, investigations).",
)
@click.option("--max-batch", type=click.IntRange(1), default=64, show_default=True)
@click.option(
    "--request-timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client has to send a whole request; also each socket read and write.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=64,
    show_default=True,
    help="Client connections (threads) open at once; past it the longest-idle one is "
    "closed, or the new one gets 503 when all are busy.",
)
@runtime_options
@teacher_options
def command(
    bundle,
    host,
    port,
    log_target,
    log_mode,
    max_batch,
    request_timeout,
    max_connections,
    **runtime,
):
    """Serve a bundle over HTTP: POST /predict, GET /healthz, GET /metrics (Prometheus).

    A generate bundle answers one question per request: {"text": "...", "evidence": [...]}
    (optional "max_tokens", "route", "logprobs"); /metrics counts its tokens too.

    \b
    Examples:
      kdedge serve bundle/ --port 8080
      curl -s localhost:8080/predict -d '{"text": "where is my order?"}'
      curl -s localhost:8080/predict -d '{"texts": ["hi", "freeze my card"], "top_k": 2}'
      kdedge serve bundle/ --teacher http://127.0.0.1:8000/v1 --teacher-model gpt-4o-mini \\
          --log requests.jsonl
      kdedge serve teacher_bundle/ --port 8081      # a teacher other servers fall back to:
      kdedge serve bundle/ --teacher kdedge+http://127.0.0.1:8081
      kdedge serve llm-bundle/ --teacher http://127.0.0.1:8000/v1 --teacher-model big
      curl -s localhost:8080/predict -d '{"text": "Is Nana in stock?", "evidence": ["..."]}'
    """
    from kdedge.runtimes.requestlog import TieredLog
    from kdedge.runtimes.server import PredictServer

    log = None
    if log_target:
        log = TieredLog(sys.stderr if log_target == "-" else log_target, mode=log_mode)
    rt = open_runtime(bundle, log=log, **runtime)
    try:
        server = PredictServer(
            rt,
            host,
            port,
            max_batch=max_batch,
            request_timeout=request_timeout,
            max_connections=max_connections,
        )
    except OSError as exc:
        rt.close()
        from kdedge.errors import ConfigError

        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    info(
        f"serving {rt.artifact.name} ({rt.backend.name}) on {server.url} · "
        f"POST /predict · GET /healthz · GET /metrics"
        + (f" · fallback → {rt.fallback.name}" if rt.fallback else "")
    )
    _stop_on_sigterm(server)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        rt.close()
        info("stopped")


def _stop_on_sigterm(server) -> None:
    """SIGTERM (containers, systemd) stops the server like Ctrl-C."""
    import signal
    import threading

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
