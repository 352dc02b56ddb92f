"""A trial render of a template in a child process with memory and CPU limits: a template
whose loops or padding run away is killed there, never in a service.

`python -m services.infra.template_trial` reads the .docx on stdin and the field mapping
(JSON) from argv[1]; it writes the rendered .docx on stdout (exit 0) or the reason on stderr
(exit 2).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass

MEMORY_BYTES = 1024 * 1024 * 1024
CPU_SECONDS = 10
WALL_SECONDS = 30.0
RENDER_REFUSED = 2
SAMPLE_URL = "https://lab.example/v/SAMPLE000000"
TOO_BIG = (
    "rendering the template with sample data needed too much memory or time "
    "(a loop, a repetition or padding that is far too big)"
)


@dataclass(frozen=True)
class TrialResult:
    docx: bytes | None
    problem: str  # "" when it rendered


def _limit() -> None:  # runs in the child, before Python starts
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def trial_render(template: bytes, mapping: dict[str, dict[str, str]] | None = None) -> TrialResult:
    """Render `template` with the sample context (and `mapping`) in a limited child process."""
    try:
        done = subprocess.run(  # noqa: S603 - our own module, fixed argv
            [sys.executable, "-m", "services.infra.template_trial", json.dumps(mapping or {})],
            input=template,
            capture_output=True,
            timeout=WALL_SECONDS,
            preexec_fn=_limit,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return TrialResult(None, TOO_BIG)
    if done.returncode == 0:
        return TrialResult(done.stdout, "")
    if done.returncode == RENDER_REFUSED:
        return TrialResult(None, done.stderr.decode(errors="replace").strip()[-500:])
    return TrialResult(None, TOO_BIG)


def main() -> int:
    from services.infra.template_context import apply_mapping, sample_context
    from services.infra.template_sandbox import TemplateRenderError, render_docx
    from services.infra.verification import Verification

    mapping = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    template = sys.stdin.buffer.read()
    context = apply_mapping(sample_context(), mapping)
    try:
        out = render_docx(template, context, verification=Verification.of(SAMPLE_URL))
    except TemplateRenderError as error:
        sys.stderr.write(str(error))
        return RENDER_REFUSED
    except MemoryError:
        sys.stderr.write(TOO_BIG)
        return 3
    sys.stdout.buffer.write(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
