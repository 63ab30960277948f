"""Tiny GLUE downloads written to disk, in the classic TSV layout, for the data and evaluate tests."""
from pathlib import Path

BOM = "\ufeff"


def write(root: Path, rel: str, lines: list[str], *, bom=False, newline="\n", final=True):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    text = newline.join(lines) + (newline if final else "")
    path.write_bytes(((BOM if bom else "") + text).encode("utf-8"))
    return path


MNLI_TRAIN_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                     "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                     "sentence1\tsentence2\tlabel1\tgold_label")
MNLI_DEV_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                   "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                   "sentence1\tsentence2\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\tgold_label")
MNLI_TEST_HEADER = ("index\tpromptID\tpairID\tgenre\tsentence1_binary_parse\t"
                    "sentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
                    "sentence1\tsentence2")


def mnli_row(i, s1, s2, labels):
    return "\t".join([str(i), "1", f"{i}e", "fiction", "( a )", "( b )", "(ROOT a)", "(ROOT b)",
                      s1, s2, *labels])


def write_mnli_with_leaderboard_extras(root: Path, wnli: bool = True) -> None:
    """A tiny MNLI download plus GLUE's diagnostic (AX) file and, optionally, WNLI."""
    write(root, "MNLI/train.tsv", [MNLI_TRAIN_HEADER] + [
        mnli_row(i, f"premise {i}", f"hypothesis {i}", [lab, lab])
        for i, lab in enumerate(["neutral", "entailment", "contradiction"] * 4)])
    for dev in ("dev_matched", "dev_mismatched"):
        write(root, f"MNLI/{dev}.tsv", [MNLI_DEV_HEADER, mnli_row(0, "pm", "hm", ["entailment"] * 6)])
    write(root, "diagnostic/diagnostic.tsv", ["index\tsentence1\tsentence2"] + [
        f"{i}\tthe cat sat {i}\ta cat sat {i}" for i in range(5)])
    if wnli:
        write(root, "WNLI/train.tsv", ["index\tsentence1\tsentence2\tlabel",
                                       "0\ta\tb\t1", "1\tc\td\t0", "2\te\tf\t1"])
        write(root, "WNLI/test.tsv", ["index\tsentence1\tsentence2", "0\tg\th", "1\ti\tj"])
