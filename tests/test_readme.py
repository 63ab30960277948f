"""The README stays short and its layout block stays true to pkd/."""
import re

from conftest import ROOT

README = ROOT / "README.md"
MAX_BYTES = 20_000


def layout_entries() -> dict[str, int]:
    """{path below the repository root: README line} of the first fenced block under "### Layout"
    (a paragraph, the map of the code, may come first)."""
    text = README.read_text()
    match = re.search(r"^### Layout\n(?:(?!^#)[^`]|`(?!``))*?^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert match, "README.md has no fenced block under a '### Layout' heading"
    first_line = text[:match.start(1)].count("\n") + 1
    entries, parents = {}, []
    for offset, line in enumerate(match[1].splitlines()):
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        name = line.split()[0]
        parents = [(i, p) for i, p in parents if i < indent]  # the folders this line is inside
        path = "".join(p for _, p in parents) + name
        entries[path] = first_line + offset
        if name.endswith("/"):
            parents.append((indent, name))
    return entries


def test_readme_is_short():
    size = len(README.read_bytes())
    assert size < MAX_BYTES, f"README.md is {size} bytes; keep it under {MAX_BYTES} (details go to docs/)"


def test_layout_lists_every_module_and_subpackage_of_pkd():
    listed = layout_entries()
    pkd = ROOT / "pkd"
    # Modules and subpackages directly under pkd/; a subpackage is listed as a folder,
    # its own modules need not be (pkd/data/, pkd/report/, and any added later).
    actual = {f"pkd/{p.name}" for p in pkd.glob("*.py") if not p.name.startswith("__")}
    actual |= {f"pkd/{p.name}/" for p in pkd.iterdir() if (p / "__init__.py").is_file()}
    missing = sorted(actual - set(listed))
    assert not missing, f"README.md's layout block does not list {missing}"


def test_every_path_in_the_layout_exists():
    gone = [f"{path} (README.md line {line})" for path, line in layout_entries().items()
            if not (ROOT / path).exists()]
    assert not gone, f"README.md's layout block lists paths that do not exist: {gone}"


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_the_docs_point_at_files_and_headings_that_exist():
    docs = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
    broken = []
    for doc in docs:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if "://" in target:
                continue
            path, _, anchor = target.partition("#")
            linked = (doc.parent / path).resolve() if path else doc
            if not linked.exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                if anchor not in {_anchor(h) for h in headings}:
                    broken.append(f"{doc.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, broken
