"""The README's two set-up commands are what newcomers and CI run."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip()]


GATES = " && ruff check . && ruff format --check . && mypy"


def test_readme_opens_with_exactly_two_commands_and_ci_runs_the_second_with_its_gates():
    commands = _readme_commands()
    assert len(commands) == 2
    main_job, tests = commands
    assert "mabsa models install" in main_job and "mabsa train" in main_job and "pytest" not in main_job
    assert tests.endswith(" && python -m pytest -q")
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    # CI runs the README's test command, with the lint and type gates just before the tests
    gated = tests.replace(" && python -m pytest -q", GATES + " && python -m pytest -q")
    assert gated in ci_lines
