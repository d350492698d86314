"""One vocabulary across the book: each idea has one Chinese name and each symbol one meaning.

Reading the pages' text only (no build, no kernel). The glossary (book/glossary.md) lists the
names the book uses; the other names readers meet (in the notes the course follows, in d2l, in
the exercises) are listed there as aliases of the book's term, and the chapters do not use them.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"
# Pages not held to the vocabulary: the grading guides speak of files (their 时间戳 is a file's
# timestamp), and the API page's headings have not been brought in yet (长短期记忆网络).
NOT_CHECKED = {"instructors", "class-grading", "api"}


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    entries = [toc["root"]] + [c["file"] for part in toc["parts"] for c in part["chapters"]]
    return [Path(entry).name for entry in entries]


# Every page of the book written in its vocabulary.
PAGES = [name for name in toc_pages() if name not in NOT_CHECKED]

# A retired name and the book's name for the same idea.
RETIRED = {
    "时间戳": "时间步",  # 时间戳 is a timestamp; the notes use it for a time step
    "长短期记忆": "长短时记忆",
    "梯度消失": "梯度弥散",
    "重置门": "复位门",
    "候选隐状态": "候选状态",
    "候选记忆元": "候选记忆",
    "随时间反向传播": "通过时间反向传播",
    "批量大小": "批大小",
}
# A name followed by the symbol it must not name: c̄_t is 候选记忆, h̄_t is 候选状态.
MISNAMED_SYMBOLS = {
    "候选状态": r"\\bar\s*\{?c",
    "候选记忆": r"\\bar\s*\{?h",
}
CHINESE = "\u4e00-\u9fff"


def page_text(name: str) -> str:
    return (BOOK / f"{name}.md").read_text(encoding="utf-8")


def glossary_block() -> str:
    text = page_text("glossary")
    return re.search(r"^```\{glossary\}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)[1]


def glossary_entries() -> list[list[str]]:
    """The glossary's entries, each as its list of names (the first is the book's term)."""
    entries, names = [], []
    for line in glossary_block().splitlines():
        if line and not line[0].isspace():
            names.append(line.strip())
        elif names:
            entries.append(names)
            names = []
    return entries


def glossary_table() -> dict[str, str]:
    """English name (lower case, parentheses removed) -> the book's Chinese term."""
    table = {}
    for zh, en in re.findall(r"^\| \{term\}`([^`]+)` \| ([^|]+) \|", page_text("glossary"), re.M):
        english = " ".join(re.sub(r"\([^)]*\)", "", en).split()).lower()
        table[english] = zh
    return table


def prose(name: str) -> str:
    """A page's text; for the glossary, all but its entries, which name the other names."""
    text = page_text(name)
    return text.replace(glossary_block(), "") if name == "glossary" else text


@pytest.mark.parametrize("name", PAGES)
def test_page_uses_no_retired_term(name):
    text = prose(name)
    used = {old: new for old, new in RETIRED.items() if old in text}
    assert not used, f"book/{name}.md: write {used} (the retired name -> the book's)"


@pytest.mark.parametrize("name", PAGES)
def test_candidate_names_match_their_symbols(name):
    for term, symbol in MISNAMED_SYMBOLS.items():
        # The name, perhaps its English in parentheses, then the symbol.
        pattern = term + r"\s*(?:\([^)]*\)\s*)?\$\s*" + symbol
        wrong = re.findall(r".{0,20}" + pattern, prose(name))
        assert not wrong, f"book/{name}.md names the wrong symbol {term}: {wrong}"


def test_the_lstm_chapter_has_no_candidate_state():
    # The LSTM has no h̄_t: its candidate c̄_t is the 候选记忆.
    assert "候选状态" not in page_text("lstm")


@pytest.mark.parametrize("name", PAGES)
def test_sigma_is_only_the_sigmoid(name):
    text = prose(name)
    # A state computed by σ(...) means σ is a general activation; the book writes φ for that.
    assert not re.findall(r"h_t\s*=\s*\\sigma\b", text), name
    assert not re.findall(r"\\sigma\s*\(\s*W_\{xh\}", text), name
    assert not re.findall(r"\\sigma\$?\s*(?:表示|是|为)一般", text), name
    assert "一般的激活函数或 sigmoid" not in text, name


@pytest.mark.parametrize("name", PAGES)
def test_english_names_follow_the_glossarys_chinese_term(name):
    """Where a page gives a term's English name, the Chinese before it is the glossary's term."""
    entries = glossary_entries()
    wrong = []
    for english, term in glossary_table().items():
        names = next((e for e in entries if e[0] == term), [term])
        # A name may join Chinese words with an en dash (编码器–解码器).
        pattern = rf"([{CHINESE}–]+)[*`\s]*\(\s*{re.escape(english)}\s*[,)]"
        for before in re.findall(pattern, prose(name), re.IGNORECASE):
            if not any(before.endswith(n) for n in names):
                wrong.append(f"{before} ({english}): expected {term}")
    assert not wrong, f"book/{name}.md: {wrong}"


def test_every_table_term_has_a_glossary_entry():
    firsts = [entry[0] for entry in glossary_entries()]
    missing = [term for term in glossary_table().values() if term not in firsts]
    assert not missing


@pytest.mark.parametrize(("old", "new"), RETIRED.items())
def test_glossary_lists_each_retired_name_as_an_alias(old, new):
    entries = [entry for entry in glossary_entries() if entry[0].startswith(new)]
    assert entries, f"the glossary has no entry {new}"
    assert any(old in name for entry in entries for name in entry[1:]), (
        f"the glossary's entry {new} does not list {old} as another name"
    )


def test_glossary_terms_are_unique():
    names = [name for entry in glossary_entries() for name in entry]
    assert len(names) == len(set(names))


# ---- One meaning per symbol, and no term before the page that introduces it ----------------

CODE_CELL = re.compile(r"^```\{code-cell\}.*?^```", re.MULTILINE | re.DOTALL)
# The root page is the course's table of contents: it names every chapter's subject.
ROOT_PAGE = toc_pages()[0]


def text_of(name: str) -> str:
    """A page's prose: its text without the code cells (their comments are English)."""
    return CODE_CELL.sub("", prose(name))


def introducing_page(term: str, english: str) -> int | None:
    """Index in the toc of the first page that gives the term with its English name."""
    pattern = re.compile(rf"{re.escape(term)}[*`\s]*\(\s*{re.escape(english)}\s*[,)]", re.I)
    pages = toc_pages()
    return next((i for i, name in enumerate(pages) if pattern.search(text_of(name))), None)


def test_every_glossary_term_is_introduced_with_its_english_name():
    missing = [
        f"{term} ({english})"
        for english, term in glossary_table().items()
        if introducing_page(term, english) is None
    ]
    assert not missing, f"no page introduces these terms with their English name: {missing}"


def test_no_chapter_uses_a_term_before_the_page_that_introduces_it():
    """A chapter may use a glossary term only if it, or a page before it, introduces the term.

    Introducing a term is giving its English name in parentheses on first use, so the defining
    chapter of a term is the first page in the toc's order that does so.
    """
    pages = toc_pages()
    early = []
    for english, term in glossary_table().items():
        introduced_at = introducing_page(term, english)
        for name in pages[: introduced_at or 0]:
            if name != ROOT_PAGE and term in text_of(name):
                early.append(f"book/{name}.md uses {term}, introduced in {pages[introduced_at]}")
    assert not early, early


def test_time_steps_count_from_one_and_python_from_zero():
    # x_t is the t-th step, t = 1..T: the array's index is t - 1 (x_1 is x[:, 0]).
    wrong = [name for name in PAGES if "`x[:, t]`" in text_of(name)]
    assert not wrong, f"`x[:, t]` is x_(t+1) in the book's time steps: {wrong}"


def test_clipnorm_is_first_named_as_clipping_each_variable_separately():
    # Keras's clipnorm clips each variable's gradient by its own norm; global-norm clipping
    # (Pascanu et al.) is global_clipnorm. Where a page first names clipnorm, it says so.
    wrong = []
    for name in PAGES:
        paragraphs = re.split(r"\n\s*\n", text_of(name))
        first = next((p for p in paragraphs if re.search(r"(?<!global_)clipnorm", p)), None)
        if first is not None and "分别" not in first:
            wrong.append(f"book/{name}.md: {first.strip()[:80]}")
    assert not wrong, wrong


def test_the_notes_update_bias_is_not_keras_update_bias():
    # b_z is the notes' update-gate bias, the negative of Keras's k_z (z = 1 - g_z): an
    # expression with Keras's update weights K_xz, K_hz uses k_z, and the rows of Keras's
    # (2, 3H) bias are written with k_z.
    wrong = []
    for name in PAGES:
        for math in re.findall(r"\$\$.*?\$\$|\$[^$]+\$", text_of(name), re.DOTALL):
            if re.search(r"K_\{[xh]z\}", math) and re.search(r"\bb_\{?h?z\b", math):
                wrong.append(f"book/{name}.md: {math[:80]}")
            if re.search(r"\[\s*b_z\s*,\s*b_r", math):
                wrong.append(f"book/{name}.md: {math[:80]}")
    assert not wrong, wrong


def test_diagonal_cell_state_jacobians_say_what_is_held_fixed():
    # dc_t/dc_{t-1} = diag(g_f) (and dh_t/dh_{t-1} = diag(1 - g_z)) only along the direct
    # edge, with h_{t-1} held fixed; the total derivative is not diagonal.
    claim = re.compile(
        r"\\partial ([ch])_t\}?\s*(?:/|\}\{)\s*\\partial \1_\{t-1\}\}?\s*=\s*\\operatorname\{diag\}"
    )
    wrong = []
    for name in PAGES:
        for sentence in re.split(r"[。；]|\n\s*\n", text_of(name)):
            if claim.search(sentence) and not re.search("固定|直接路径|直接的边", sentence):
                wrong.append(f"book/{name}.md: {sentence.strip()[:80]}")
    assert not wrong, wrong
