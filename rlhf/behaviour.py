"""Behavioural drift: what changed in a model's outputs between two snapshots, and across rounds of training.

ILF is iterative self-training: each round the model learns from text it wrote itself, and it can learn
more than it was asked (the project's own CPU run started writing comments on the text instead of
summaries). This module compares samples of a model before and after fine-tuning, capability-agnostic:
texts in, a report out.

    from rlhf.behaviour import behaviour_diff, drift_report, check_drift

    # two snapshots
    report = behaviour_diff(texts_before, texts_after, judge_model="smollm2-135m-instruct",
                            intended_change="summaries should include what the feedback asked for")
    report.write("runs/drift")            # report.json, report.md, shares.png (written atomically)

    # after each round of a loop: round r against round r-1 and against the base model
    report = drift_report({"base": base, "round_1": r1, "round_2": r2}, judge_model=..., intended_change=...)
    report.write(run_dir / "drift")       # shares.png follows each cluster's share over all rounds
    check_drift(report, 0.10)             # raises DriftStop naming the cluster and showing examples

How a report is made:

1. Every text of every group is split into sentences (``unit="sentence"``, the default) and each sentence
   is embedded with a sentence-transformers model (the embedded all-MiniLM-L6-v2 by default), normalised.
   Sentences, not whole texts, because drift is often sentence-sized (a disclaimer, a meta-comment, a
   catchphrase, a digression) and is added to texts on every topic: an embedding of the whole text is
   dominated by its topic, so such a sentence spreads over the topic clusters. In ``benchmarks/drift.py``
   whole-text clusters missed a pirate style shown by 10% of a model's outputs and a meta-comment shown by
   8% (recall 0.83); sentence clusters found all 12 planted behaviours. ``unit="text"`` clusters whole
   texts instead (e.g. programs).
2. The pooled sentences of all groups are clustered once, with scikit-learn's k-means, so that every
   group's share of every cluster is measured on the same clusters; a cluster's share of a group is the
   fraction of the group's texts with a sentence in it. k defaults to about √n for n sentences (between 2
   and 60). In exploratory runs on the benchmark's samples, k = 30, 40 and 60 found all 12 planted
   behaviours with no false discovery in 13 comparisons of two samples of one model, while k = 20 and
   √(n/2) ≈ 28 missed a phrase shown by 3.5% of outputs (and k = 20 made one false discovery). HDBSCAN,
   tried on whole texts, left most of them unclustered as noise (554 of 792) and found neither the topic
   nor the phrase planted at 5%.
   With ``openings=True`` (the loops' reports), each sentence opening (its first 3 or 2 words) used by at
   least 10% of some group's texts is a cluster too: an embedding mostly reflects what a sentence says, so a
   frame put around statements on every topic ("The post highlights a situation where ...") spreads over the
   topic clusters. In a text quickstart run, "The post is ..." grew from 3% to 70% of one seed's 70 test
   summaries, and the sentence clusters alone showed no significant shift.
3. Per comparison (before → after) and cluster: the count and share of each side's texts in it, and a
   two-sided two-proportion z-test of the shares; Benjamini–Hochberg q-values over the clusters of the
   comparison control the false discovery rate at ``alpha`` (a cluster is significant when q < alpha).
4. Keywords: class-based TF-IDF (each cluster's sentences as one document; scikit-learn's CountVectorizer,
   English stop words removed), the words most specific to the cluster. Optionally ``label_model``, a
   causal LM, writes a short label from the cluster's examples and keywords.
5. Optionally ``judge_model``, a causal LM told the ``intended_change``, reads each significant shift (its
   direction, examples and keywords) and answers whether it is part of the intended change, yes or no,
   from next-token probabilities (:class:`rlhf.lm_choice.NextTokenChoice`): p(yes) >= 0.5 is "intended".

:func:`check_drift` is the stop rule for loops (a config's ``drift.stop_if_unintended_share``): a
cluster that grew significantly, that the judge calls unintended, and that holds more than the threshold
of the later group's texts stops the run with :class:`DriftStop`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rlhf.artifacts import atomic_path, write_text_atomic

logger = logging.getLogger(__name__)

#: Fewer texts than this in a group leave nothing to test (a share of 1 in 5 is no evidence of drift).
MIN_TEXTS_PER_GROUP = 10
MAX_AUTO_CLUSTERS = 60
EXAMPLE_CHARS = 300  # examples are cut to this length in prompts and in the Markdown report
DETAILED_CLUSTERS = 10  # the Markdown report shows examples of the significant clusters and this many more
OPENING_WORDS = (3, 2)  # with openings=True: sentences grouped by their first 3 words, and by their first 2
MIN_OPENING_SHARE = 0.1  # an opening is tested when at least this share of some group's texts use it


class DriftStop(RuntimeError):
    """A cluster the judge calls unintended grew past the threshold; ``shift`` and ``cluster`` say which."""

    def __init__(self, message: str, shift: Shift | None = None, cluster: Cluster | None = None):
        super().__init__(message)
        self.shift, self.cluster = shift, cluster


@dataclass
class Cluster:
    """One cluster of the pooled units (sentences or texts): each group's count and share, keywords, examples."""

    id: int
    size: int  # units in the cluster
    counts: dict[str, int]  # per group: its texts with a unit in the cluster
    shares: dict[str, float]  # count / number of texts of the group
    keywords: list[str]
    examples: dict[str, list[str]]  # per group: its distinct units nearest the cluster centre
    example_texts: dict[str, list[str]]  # the texts those units come from
    label: str | None = None
    kind: str = "embedding"  # "embedding": a k-means cluster; "opening": the sentences that open with a phrase

    def name(self) -> str:
        """A short readable name: the label if there is one, else the first keywords."""
        return self.label or ", ".join(self.keywords[:4]) or f"cluster {self.id}"


@dataclass
class Shift:
    """The change of one cluster's share from group ``before`` to group ``after``, with its test and verdict."""

    before: str
    after: str
    cluster: int
    count_before: int
    count_after: int
    share_before: float
    share_after: float
    shift: float  # share_after - share_before
    z: float
    p_value: float
    q_value: float  # Benjamini-Hochberg, over the clusters of this comparison
    significant: bool
    verdict: str | None = None  # "intended" or "unintended" (significant shifts, when a judge was given)
    p_intended: float | None = None


@dataclass
class Comparison:
    before: str
    after: str
    shifts: list[Shift]  # largest absolute shift first

    def significant(self) -> list[Shift]:
        return [s for s in self.shifts if s.significant]


@dataclass
class DriftReport:
    """Clusters of the pooled texts of all groups, and the shifts between compared groups."""

    groups: list[str]
    sizes: dict[str, int]
    clusters: list[Cluster]
    comparisons: list[Comparison]
    settings: dict[str, Any]
    assignments: dict[str, list[list[int]]] = field(default_factory=dict)  # per group and text: its clusters

    def significant(self) -> list[Shift]:
        """Every significant shift, comparison by comparison."""
        return [s for c in self.comparisons for s in c.significant()]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> DriftReport:
        data = json.loads(text)
        data["clusters"] = [Cluster(**c) for c in data["clusters"]]
        data["comparisons"] = [Comparison(c["before"], c["after"], [Shift(**s) for s in c["shifts"]])
                               for c in data["comparisons"]]
        return cls(**data)

    def to_markdown(self) -> str:
        """A readable report: per comparison, clusters sorted by shift with keywords, label, shares, p/q values,
        verdict and examples; with more than two groups, every cluster's share per group."""
        s = self.settings
        lines = ["# Behaviour drift report", ""]
        unit = s["unit"]
        clustering = (f"k-means on the {unit}s of all texts, k = {sum(c.kind == 'embedding' for c in self.clusters)}"
                      f"{' (auto)' if s['n_clusters'] is None else ''}")
        if s.get("openings"):
            clustering += (f", plus {sum(c.kind == 'opening' for c in self.clusters)} sentence openings (the first "
                           f"{' or '.join(map(str, OPENING_WORDS))} words of a sentence) each used by at least "
                           f"{MIN_OPENING_SHARE:.0%} of a group's texts")
        lines.append("Texts: " + ", ".join(f"{g} {self.sizes[g]}" for g in self.groups) + f". Embedder: "
                     f"{s['embedder']}; clustering: {clustering}; a cluster's share of a group is the fraction of the "
                     f"group's texts {'in it' if unit == 'text' else 'with a sentence in it'}; test: two-proportion "
                     f"z-test per cluster, Benjamini-Hochberg q < {s['alpha']} per comparison.")
        if s.get("judge_model"):
            lines.append(f"Judge: {s['judge_model']}, told the intended change: \"{s['intended_change']}\".")
        if s.get("label_model"):
            lines.append(f"Labels written by {s['label_model']}.")
        for comparison in self.comparisons:
            a, b = comparison.before, comparison.after
            title = f"## {b} vs {a}: {len(comparison.significant())} significant of {len(self.clusters)} clusters"
            lines += ["", title, "",
                      f"| cluster | label | keywords | {a} | {b} | shift | p | q | verdict |",
                      "|---|---|---|---|---|---|---|---|---|"]
            for sh in comparison.shifts:
                c = self.clusters[sh.cluster]
                verdict = sh.verdict or ("significant" if sh.significant else "")
                lines.append(f"| {c.id} | {_cell(c.label or '')} | {_cell(', '.join(c.keywords[:6]))} | "
                             f"{sh.share_before:.1%} ({sh.count_before}) | {sh.share_after:.1%} ({sh.count_after}) | "
                             f"{100 * sh.shift:+.1f} pts | {sh.p_value:.2g} | {sh.q_value:.2g} | {verdict} |")
            detailed = [sh for i, sh in enumerate(comparison.shifts) if sh.significant or i < DETAILED_CLUSTERS]
            if len(detailed) < len(comparison.shifts):
                lines += ["", (f"Below: the significant clusters and the {DETAILED_CLUSTERS} largest shifts; examples "
                               "of every cluster are in report.json.")]
            for sh in detailed:
                c = self.clusters[sh.cluster]
                side = b if sh.shift >= 0 else a
                status = "significant" if sh.significant else "not significant"
                if sh.verdict:
                    status += f", {sh.verdict} (p(intended) = {sh.p_intended:.2f})"
                numbers = (f"Keywords: {', '.join(c.keywords) or '-'}. Share: {a} {sh.share_before:.1%}, "
                           f"{b} {sh.share_after:.1%} (z = {sh.z:.2f}, p = {sh.p_value:.2g}, q = {sh.q_value:.2g}).")
                lines += ["", f"### Cluster {c.id}: {c.name()} ({100 * sh.shift:+.1f} points, {status})", "",
                          numbers, "", f"Examples from {side}:", ""]
                lines += [f"- {_one_line(u)}" + (f"  \n  in: {_one_line(t)}" if t != u else "")
                          for u, t in zip(c.examples.get(side, []), c.example_texts.get(side, []))] or ["(none)"]
        if len(self.groups) > 2:
            lines += ["", "## Share of each cluster per group", "",
                      "| cluster | " + " | ".join(self.groups) + " |", "|---|" + "---|" * len(self.groups)]
            for c in self.clusters:
                lines.append(f"| {c.id} {_cell(c.name())} | " + " | ".join(f"{c.shares[g]:.1%}" for g in self.groups)
                             + " |")
        return "\n".join(lines) + "\n"

    def plot(self, path: str | os.PathLike) -> Path:
        """PNG of the shares: with two groups, bars per cluster (sorted by shift, * = significant); with more,
        each cluster's share across the groups (rounds), the clusters significant in a comparison in colour."""
        from matplotlib.figure import Figure

        significant = {s.cluster for s in self.significant()}
        if len(self.groups) == 2:
            order = [s.cluster for s in self.comparisons[0].shifts][::-1]  # largest shift at the top
            fig = Figure(figsize=(9, 1.5 + 0.35 * len(order)))
            ax = fig.subplots()
            y = np.arange(len(order))
            for offset, group in ((0.2, self.groups[0]), (-0.2, self.groups[1])):
                ax.barh(y + offset, [self.clusters[c].shares[group] for c in order], height=0.4, label=group)
            ax.set_yticks(y, [f"{'* ' if c in significant else ''}{c}: {self.clusters[c].name()[:45]}"
                              for c in order], fontsize=8)
            ax.set_xlabel("share of the group's texts")
            ax.set_title(f"Cluster shares, {self.groups[0]} vs {self.groups[1]} (* = significant)")
        else:
            fig = Figure(figsize=(9, 5))
            ax = fig.subplots()
            x = np.arange(len(self.groups))
            for c in self.clusters:
                shares = [c.shares[g] for g in self.groups]
                if c.id in significant:
                    ax.plot(x, shares, marker="o", linewidth=2, label=f"{c.id}: {c.name()[:40]}")
                else:
                    ax.plot(x, shares, color="grey", alpha=0.35, linewidth=1)
            ax.set_xticks(x, self.groups)
            ax.set_ylabel("share of the group's texts")
            ax.set_title("Cluster shares across rounds (colour: significant shift; grey: the others)")
            if significant:
                ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        if len(self.groups) == 2:
            ax.legend(fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        return Path(path)

    def write(self, out_dir: str | os.PathLike) -> dict[str, Path]:
        """Write ``report.json``, ``report.md`` and ``shares.png`` into ``out_dir``, each atomically."""
        out_dir = Path(out_dir)
        return {
            "json": write_text_atomic(out_dir / "report.json", self.to_json()),
            "markdown": write_text_atomic(out_dir / "report.md", self.to_markdown()),
            "plot": self.plot(out_dir / "shares.png"),
        }


def _one_line(text: str, limit: int = EXAMPLE_CHARS) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# --- statistics ------------------------------------------------------------------------------------------


def two_proportion_test(count_a: int, n_a: int, count_b: int, n_b: int) -> tuple[float, float]:
    """Two-sided two-proportion z-test of count_a/n_a against count_b/n_b (pooled variance): ``(z, p)``.

    z > 0 when the share of b is larger. Equal shares of 0 or 1 (no variance) give ``(0, 1)``.
    """
    from scipy.stats import norm

    pooled = (count_a + count_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    if se == 0:
        return 0.0, 1.0
    z = (count_b / n_b - count_a / n_a) / se
    return float(z), float(2 * norm.sf(abs(z)))


def class_tfidf_keywords(texts: Sequence[str], labels: Sequence[int], n_keywords: int = 10) -> dict[int, list[str]]:
    """Keywords per class by class-based TF-IDF (as BERTopic computes it), from scikit-learn's CountVectorizer.

    All texts of a class form one document; a word's weight in class c is its frequency in c (normalised
    by the class's word count) times log(1 + A / f), A the mean word count per class and f the word's
    count over all classes: frequent in the class and rare elsewhere. English stop words are left out.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    classes = sorted(set(labels))
    docs = [" ".join(t for t, label in zip(texts, labels) if label == c) for c in classes]
    vectorizer = CountVectorizer(stop_words="english")
    try:
        counts = vectorizer.fit_transform(docs).toarray().astype(float)
    except ValueError:  # no word left (empty texts, only stop words or symbols)
        return {c: [] for c in classes}
    words = vectorizer.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    idf = np.log(1 + counts.sum() / len(classes) / np.maximum(counts.sum(axis=0), 1))
    weights = tf * idf
    return {c: [words[j] for j in np.argsort(-weights[i])[:n_keywords] if counts[i, j] > 0]
            for i, c in enumerate(classes)}


def auto_n_clusters(n_units: int) -> int:
    """The default k: about sqrt(n) for n units, between 2 and ``MAX_AUTO_CLUSTERS``."""
    return int(min(MAX_AUTO_CLUSTERS, max(2, round(math.sqrt(n_units)))))


# --- LM labels and judge -----------------------------------------------------------------------------------


def _load_lm(model: Any, role: str) -> tuple[Any, Any, str]:
    """``(model, tokenizer, name)`` from a name/path or a ``(model, tokenizer)`` pair; a failed load names ``role``."""
    if isinstance(model, tuple) and len(model) == 2:
        return model[0], model[1], getattr(model[0], "name_or_path", "") or type(model[0]).__name__
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"{role}: expected a model name or path, or a (model, tokenizer) pair, got {type(model).__name__}")
    from rlhf.models import ModelNotAvailableError, load_causal_lm

    try:
        lm, tokenizer = load_causal_lm(model)
    except Exception as e:  # any failure to load (missing path, bad config, not a causal LM) gets named here
        raise ModelNotAvailableError(f"{role} {str(model)!r} cannot be loaded: {type(e).__name__}: {e}") from e
    return lm, tokenizer, str(model)


def _examples_block(texts: Sequence[str], limit: int = EXAMPLE_CHARS) -> str:
    return "\n".join(f"{i}. {_one_line(t, limit)}" for i, t in enumerate(texts, 1))


def write_labels(clusters: Sequence[Cluster], model: Any, tokenizer: Any, *, max_new_tokens: int = 16,
                 batch_size: int = 8) -> list[str]:
    """A short label per cluster written by a causal LM from the cluster's examples and keywords (greedy).

    The prompt goes through the chat template when the tokenizer has one; a prompt longer than the model's
    context keeps its end. The label is the first line of the answer, without quotes, at most 80 characters.
    """
    import torch

    from rlhf.lm_choice import context_length, format_prompt, left_pad, resolve_chat_template

    chat = resolve_chat_template(tokenizer, None, "label model")
    prompts = []
    for c in clusters:
        examples = [t for texts in c.examples.values() for t in texts][:4]
        question = (f"Here are texts from one group:\n{_examples_block(examples, 150)}\n\n"
                    f"Keywords: {', '.join(c.keywords[:8])}\n\nGive the group a short title of at most six words.")
        # The answer starts with "Title:" (on the assistant turn for chat models): a title, not a sentence about it.
        prompts.append(format_prompt(tokenizer, question, chat=chat, cue="\nTitle:") + ("Title:" if chat else ""))
    ids = tokenizer(prompts, add_special_tokens=not chat)["input_ids"]
    limit = context_length(model)
    if limit:
        ids = [x[-(limit - max_new_tokens):] for x in ids]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    labels = []
    try:
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                input_ids, mask, _ = left_pad(ids[start:start + batch_size], pad_id)
                out = model.generate(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                     max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id,
                                     temperature=None, top_p=None, top_k=None)
                for text in tokenizer.batch_decode(out[:, input_ids.shape[1]:], skip_special_tokens=True):
                    first_line = next((line for line in text.strip().splitlines() if line.strip()), "")
                    labels.append(first_line.strip().strip("\"'*.").strip()[:80])
    finally:
        model.train(was_training)
    return labels


def judge_question(shift: Shift, cluster: Cluster, intended_change: str) -> str:
    """What the judge is asked about one shift: the intended change, the direction, examples and keywords."""
    grew = shift.shift > 0
    side = shift.after if grew else shift.before
    examples, texts = cluster.examples.get(side, [])[:3], cluster.example_texts.get(side, [])
    in_full = f"One of these outputs in full: {_one_line(texts[0])}\n" if texts and texts[0] != examples[0] else ""
    return (f"A language model was fine-tuned. The intended change was: {intended_change.strip()}\n\n"
            f"After fine-tuning, {'more' if grew else 'fewer'} of the model's outputs contain text like this ("
            f"{shift.share_before:.0%} of its outputs before, {shift.share_after:.0%} after):\n"
            f"{_examples_block(examples)}\n{in_full}"
            f"Keywords: {', '.join(cluster.keywords[:8])}\n\n"
            f"Is this change part of the intended change? Answer Yes or No.")


def judge_shifts(shifts: Sequence[Shift], clusters: Sequence[Cluster], intended_change: str, model: Any,
                 tokenizer: Any, *, batch_size: int = 8) -> None:
    """Set ``verdict`` and ``p_intended`` of each shift: p(yes) to "is this part of the intended change?"."""
    from rlhf.lm_choice import NO_SPELLINGS, YES_SPELLINGS, NextTokenChoice

    if not shifts:
        return
    judge = NextTokenChoice(model, tokenizer, [YES_SPELLINGS, NO_SPELLINGS], batch_size=batch_size,
                            who="behaviour judge")
    questions = [judge_question(s, clusters[s.cluster], intended_change) for s in shifts]
    unique = sorted(set(questions))  # the same cluster and direction in two comparisons is asked once
    p_yes = dict(zip(unique, judge.ask(unique)[:, 0].tolist()))
    for shift, question in zip(shifts, questions):
        shift.p_intended = float(p_yes[question])
        shift.verdict = "intended" if shift.p_intended >= 0.5 else "unintended"


# --- the reports -----------------------------------------------------------------------------------------


def _check_groups(texts_by_group: Any) -> dict[str, list[str]]:
    if not isinstance(texts_by_group, Mapping):
        raise TypeError(f"texts_by_round: expected a mapping of group name to texts, got {type(texts_by_group).__name__}")
    groups = {str(k): v for k, v in texts_by_group.items()}
    if len(groups) < 2:
        raise ValueError(f"texts_by_round: need at least two groups of texts to compare, got {list(groups) or 'none'}")
    for name, texts in groups.items():
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"texts of {name!r}: expected a list of strings, got {type(texts).__name__}")
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"texts of {name!r}[{bad}]: expected a string, got {type(texts[bad]).__name__}")
        if len(texts) == 0:
            raise ValueError(f"texts of {name!r} are empty: a comparison needs texts on both sides")
        if len(texts) < MIN_TEXTS_PER_GROUP:
            raise ValueError(f"texts of {name!r}: {len(texts)} texts are too few to cluster and compare; "
                             f"need at least {MIN_TEXTS_PER_GROUP} per group")
    return {name: list(texts) for name, texts in groups.items()}


SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_units(text: str, unit: str) -> list[str]:
    """The units of ``text`` that are clustered: its sentences (split after . ! ? and at line breaks; fragments
    under 3 characters dropped), or the whole text (``unit="text"``; an empty text has no unit)."""
    if unit == "text":
        return [text] if text.strip() else []
    return [s.strip() for s in SENTENCE_END.split(text) if len(s.strip()) >= 3]


def _embed(texts: list[str], embedder: Any, batch_size: int) -> tuple[np.ndarray, str]:
    from rlhf.models import load_sentence_embedder

    name = embedder if isinstance(embedder, (str, os.PathLike)) else type(embedder).__name__
    if isinstance(embedder, (str, os.PathLike)):
        embedder = load_sentence_embedder(embedder)
    unique = list(dict.fromkeys(texts))  # repeated sentences (common in model samples) are embedded once
    emb = embedder.encode(unique, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                          show_progress_bar=False)
    row = {t: i for i, t in enumerate(unique)}
    return np.asarray(emb, dtype=np.float32)[[row[t] for t in texts]], str(name)


def _cluster(embeddings: np.ndarray, n_clusters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K-means labels and centres; k is capped by the number of distinct units (embeddings)."""
    from sklearn.cluster import KMeans

    distinct = len(np.unique(embeddings.round(6), axis=0))
    k = max(1, min(n_clusters, distinct))
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(embeddings)
    return km.labels_, km.cluster_centers_


def sentence_openings(units: Sequence[str], text_of_unit: np.ndarray, group_of_text: np.ndarray,
                      min_share: float = MIN_OPENING_SHARE) -> list[tuple[str, np.ndarray]]:
    """Sentence openings worth testing: ``(phrase, units that open with it)`` for the first words of sentences
    (:data:`OPENING_WORDS`, lower case) used by at least ``min_share`` of some group's texts.

    An embedding mostly reflects what a sentence says; how it is framed ("The post highlights a situation where
    ...", "Sure! Here is ...") spreads over clusters by topic, as a sentence added to texts on every topic does
    over whole-text clusters. A 2-word opening with the same texts as a 3-word one it starts is left out.
    """
    words = [re.findall(r"[a-z0-9']+", u.lower()) for u in units]
    n_texts = np.bincount(group_of_text)
    found: list[tuple[str, np.ndarray, frozenset]] = []
    for n in OPENING_WORDS:
        by_phrase: dict[str, list[int]] = {}
        for i, w in enumerate(words):
            if len(w) >= n:
                by_phrase.setdefault(" ".join(w[:n]), []).append(i)
        for phrase, members in sorted(by_phrase.items()):
            texts = frozenset(text_of_unit[members].tolist())
            per_group = np.bincount(group_of_text[sorted(texts)], minlength=len(n_texts))
            if (per_group / n_texts).max() < min_share:
                continue
            if any(longer.startswith(phrase + " ") and same == texts for longer, _, same in found):
                continue
            found.append((phrase, np.array(members), texts))
    return [(phrase, members) for phrase, members, _ in found]


def drift_report(
    texts_by_round: Mapping[str, Sequence[str]],
    *,
    comparisons: Sequence[tuple[str, str]] | None = None,
    unit: str = "sentence",
    embedder: Any = "all-minilm-l6-v2",
    n_clusters: int | None = None,
    alpha: float = 0.05,
    n_keywords: int = 10,
    n_examples: int = 3,
    label_model: Any = None,
    judge_model: Any = None,
    intended_change: str | None = None,
    openings: bool = False,
    seed: int = 0,
    batch_size: int = 64,
) -> DriftReport:
    """Cluster the texts of every group (model snapshot, round) together and test each cluster's share shift.

    ``texts_by_round`` maps group names to texts, in order: the first is the base model, the last the latest
    round. ``comparisons`` are ``(before, after)`` pairs of group names; the default compares the last group
    with the one before it and with the first (one pair when there are two groups). ``unit`` is what is
    clustered: ``"sentence"`` (a cluster's share of a group is the fraction of its texts with a sentence in
    the cluster) or ``"text"`` (each text in one cluster; e.g. for programs). ``embedder`` is a
    sentence-transformers name/path or model; ``n_clusters`` k for k-means (default :func:`auto_n_clusters`
    of the number of units); ``alpha`` the false discovery rate. ``label_model`` and ``judge_model`` are causal
    LM names/paths or ``(model, tokenizer)`` pairs; the judge needs ``intended_change``, a sentence saying what
    the fine-tuning was meant to change. ``n_examples`` units per group and cluster (those nearest its centre),
    with the texts they come from, go into the report, the label prompt and the judge prompt. ``openings``
    adds a cluster per common sentence opening (:func:`sentence_openings`; ``unit="sentence"`` only): drift in
    how sentences are framed, which sentence embeddings spread over topics. Off by default, as in
    ``benchmarks/drift.py``'s figures; the loops' reports turn it on (:meth:`DriftSettings.reports`).
    """
    groups = _check_groups(texts_by_round)
    names = list(groups)
    if comparisons is None:
        comparisons = list(dict.fromkeys([(names[-2], names[-1]), (names[0], names[-1])]))
    for pair in comparisons:
        if len(pair) != 2 or any(g not in groups for g in pair) or pair[0] == pair[1]:
            raise ValueError(f"comparisons: {pair!r} is not a pair of two different groups of {names}")
    if unit not in ("sentence", "text"):
        raise ValueError(f"unit: expected 'sentence' or 'text', got {unit!r}")
    if openings and unit != "sentence":
        raise ValueError("openings: sentence openings need unit='sentence'")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: expected a false discovery rate between 0 and 1, got {alpha}")
    if n_clusters is not None and n_clusters < 2:
        raise ValueError(f"n_clusters: need at least 2 clusters, got {n_clusters}")
    if judge_model is not None and not (intended_change or "").strip():
        raise ValueError("intended_change: the judge needs a sentence saying what the fine-tuning was meant to change")
    # Load the LMs before the (slower) embedding, so a model that cannot load fails at once.
    labeler = _load_lm(label_model, "label_model") if label_model is not None else None
    if judge_model is not None:
        same = labeler is not None and judge_model == label_model
        judge = labeler if same else _load_lm(judge_model, "judge_model")

    texts = [t for name in names for t in groups[name]]
    group_of_text = np.array([i for i, name in enumerate(names) for _ in groups[name]])
    units, text_of_unit = [], []
    for i, text in enumerate(texts):
        for u in split_units(text, unit):
            units.append(u)
            text_of_unit.append(i)
    if len(units) < 2:
        raise ValueError(f"texts_by_round: {len(units)} {unit}s in all the texts, too few to cluster")
    text_of_unit = np.array(text_of_unit)
    group_of_unit = group_of_text[text_of_unit]
    embeddings, embedder_name = _embed(units, embedder, batch_size)
    labels, centres = _cluster(embeddings, n_clusters or auto_n_clusters(len(units)), seed)
    keywords = class_tfidf_keywords(units, labels.tolist(), n_keywords)
    distance = ((embeddings - centres[labels]) ** 2).sum(axis=1)
    member = np.zeros((len(texts), len(centres)), dtype=bool)  # text i has a unit in cluster c
    member[text_of_unit, labels] = True

    clusters = []
    for c in range(len(centres)):
        counts = {name: int(member[group_of_text == g, c].sum()) for g, name in enumerate(names)}
        examples, example_texts = {}, {}
        for g, name in enumerate(names):
            members = np.flatnonzero((labels == c) & (group_of_unit == g))
            nearest = members[np.argsort(distance[members], kind="stable")]
            chosen: dict[str, int] = {}  # distinct units, nearest first, and the text each comes from
            for i in nearest:
                if len(chosen) == n_examples:
                    break
                chosen.setdefault(units[i], int(text_of_unit[i]))
            examples[name] = list(chosen)
            example_texts[name] = [texts[i] for i in chosen.values()]
        clusters.append(Cluster(id=c, size=int((labels == c).sum()), counts=counts,
                                shares={name: counts[name] / len(groups[name]) for name in names},
                                keywords=keywords.get(c, []), examples=examples, example_texts=example_texts))

    if openings:
        for phrase, members in sentence_openings(units, text_of_unit, group_of_text):
            column = np.zeros((len(texts), 1), dtype=bool)
            column[text_of_unit[members], 0] = True
            member = np.hstack([member, column])
            counts = {name: int(column[group_of_text == g, 0].sum()) for g, name in enumerate(names)}
            examples, example_texts = {}, {}
            for g, name in enumerate(names):
                chosen = {}  # the first distinct sentences of the group with this opening, and their texts
                for i in members[group_of_unit[members] == g]:
                    if len(chosen) == n_examples:
                        break
                    chosen.setdefault(units[i], int(text_of_unit[i]))
                examples[name], example_texts[name] = list(chosen), [texts[i] for i in chosen.values()]
            clusters.append(Cluster(id=len(clusters), size=len(members), counts=counts,
                                    shares={name: counts[name] / len(groups[name]) for name in names},
                                    keywords=phrase.split(), examples=examples, example_texts=example_texts,
                                    label=f'sentences opening "{phrase} ..."', kind="opening"))

    results = [_compare(clusters, before, after, {n: len(groups[n]) for n in names}, alpha)
               for before, after in comparisons]
    if labeler is not None:
        embedded = [c for c in clusters if c.kind == "embedding"]  # an opening's label is its phrase
        for cluster, label in zip(embedded, write_labels(embedded, labeler[0], labeler[1])):
            cluster.label = label or None
    if judge_model is not None:
        judge_shifts([s for c in results for s in c.significant()], clusters, intended_change, judge[0], judge[1])

    settings = {"unit": unit, "embedder": embedder_name, "n_clusters": n_clusters, "alpha": alpha, "seed": seed,
                "label_model": labeler[2] if labeler else None, "judge_model": judge[2] if judge_model else None,
                "intended_change": intended_change, "openings": openings}
    offsets = np.cumsum([0] + [len(groups[n]) for n in names])
    assignments = {n: [np.flatnonzero(row).tolist() for row in member[offsets[g]:offsets[g + 1]]]
                   for g, n in enumerate(names)}
    return DriftReport(groups=names, sizes={n: len(groups[n]) for n in names}, clusters=clusters,
                       comparisons=results, settings=settings, assignments=assignments)


def _compare(clusters: list[Cluster], before: str, after: str, sizes: dict[str, int], alpha: float) -> Comparison:
    from scipy.stats import false_discovery_control

    tests = [two_proportion_test(c.counts[before], sizes[before], c.counts[after], sizes[after]) for c in clusters]
    q_values = false_discovery_control([p for _, p in tests], method="bh")
    shifts = [Shift(before=before, after=after, cluster=c.id, count_before=c.counts[before],
                    count_after=c.counts[after], share_before=c.shares[before], share_after=c.shares[after],
                    shift=c.shares[after] - c.shares[before], z=z, p_value=p, q_value=float(q),
                    significant=bool(q < alpha))
              for c, (z, p), q in zip(clusters, tests, q_values)]
    return Comparison(before, after, sorted(shifts, key=lambda s: -abs(s.shift)))


def behaviour_diff(texts_a: Sequence[str], texts_b: Sequence[str], *, name_a: str = "before", name_b: str = "after",
                   **kwargs: Any) -> DriftReport:
    """Compare two samples of texts, A (e.g. before fine-tuning) and B (after): which kinds of text grew or shrank.

    The texts are clustered together; each cluster gets its share of A and of B, a two-proportion test with
    Benjamini-Hochberg control of false discoveries, keywords, and optionally an LM label and an LM judge's
    verdict (intended or unintended change). ``name_a``/``name_b`` name the two groups in the report; the
    other arguments are those of :func:`drift_report`.
    """
    for arg, texts in (("texts_a", texts_a), ("texts_b", texts_b)):
        if isinstance(texts, str) or not isinstance(texts, Sequence):
            raise TypeError(f"behaviour_diff: {arg} must be a list of strings, got {type(texts).__name__}")
        if len(texts) == 0:
            raise ValueError(f"behaviour_diff: {arg} ({name_a if arg == 'texts_a' else name_b}) is empty; "
                             "both sides need texts")
    if name_a == name_b:
        raise ValueError(f"behaviour_diff: name_a and name_b must differ, both are {name_a!r}")
    return drift_report({name_a: texts_a, name_b: texts_b}, **kwargs)


def check_drift(report: DriftReport, threshold: float) -> None:
    """Raise :class:`DriftStop` if a significant, grown cluster that the judge calls unintended holds more than
    ``threshold`` of the later group's texts (e.g. ``drift.stop_if_unintended_share``).

    The message names the cluster (label, keywords), its shares, the judge's p(intended) and shows examples.
    A report without judge verdicts cannot tell intended from unintended: if it has a grown significant
    cluster above the threshold, that is an error asking for a judge.
    """
    if not 0 <= threshold <= 1:
        raise ValueError(f"check_drift: threshold is a share of texts between 0 and 1, got {threshold}")
    over = [s for s in report.significant() if s.shift > 0 and s.share_after > threshold]
    unjudged = [s for s in over if s.verdict is None]
    if unjudged:
        c = report.clusters[unjudged[0].cluster]
        raise ValueError(f"check_drift: cluster {c.id} ({c.name()}) grew to {unjudged[0].share_after:.1%} of "
                         f"{unjudged[0].after!r}, above {threshold:.1%}, but the report has no judge verdicts; "
                         "make it with judge_model and intended_change")
    unintended = sorted((s for s in over if s.verdict == "unintended"), key=lambda s: -s.share_after)
    if not unintended:
        return
    worst = unintended[0]
    c = report.clusters[worst.cluster]
    examples = "\n".join(f"  - {_one_line(u)}" + (f"\n    in: {_one_line(t)}" if t != u else "")
                         for u, t in zip(c.examples.get(worst.after, []), c.example_texts.get(worst.after, [])))
    others = "".join(f"\nAlso above the threshold: cluster {s.cluster} ({report.clusters[s.cluster].name()}), "
                     f"{s.share_after:.1%} of {s.after!r} (vs {s.before!r})" for s in unintended[1:])
    raise DriftStop(
        f"drift check: cluster {c.id} \"{c.name()}\" (keywords: {', '.join(c.keywords[:8])}) grew from "
        f"{worst.share_before:.1%} of {worst.before!r} to {worst.share_after:.1%} of {worst.after!r} "
        f"(q = {worst.q_value:.2g}), above the threshold of {threshold:.1%}, and the judge calls it unintended "
        f"(p(intended) = {worst.p_intended:.2f}; intended change: \"{report.settings.get('intended_change')}\").\n"
        f"Examples from {worst.after!r}:\n{examples}{others}",
        worst, c,
    )


@dataclass
class DriftSettings:
    """The ``drift`` section of an iterative loop's config: a drift report after every round.

    Every snapshot (the base model, then the model after each round) answers ``task_prompts`` held-out task
    prompts and ``probes`` out-of-task probes (:func:`rlhf.probes.spread_probes`), sampled as the loop samples. After round r,
    :meth:`reports` compares round r with round r-1 and with the base model, separately for the task answers
    (``task/``) and the probe answers (``probes/``), and :meth:`check` stops the run when a significant,
    grown cluster that the judge calls unintended holds more than ``stop_if_unintended_share`` of the
    latest round's texts (:func:`check_drift`). Reports on sentences test sentence openings too
    (``drift_report(openings=True)``).
    """

    task_prompts: int = 32
    probes: int = 32  # 0: task prompts only
    max_new_tokens: int = 64  # for the probe answers (task answers are generated as the task does)
    intended_change: str = ""  # the sentence the judge is told, e.g. "summaries state what the feedback asked for"
    judge_model: str = ""  # a causal LM (name or path) that calls each significant shift intended or not
    label_model: str = ""  # a causal LM that writes a short title per cluster ("" keywords only)
    alpha: float = 0.05  # false discovery rate of the shift tests
    stop_if_unintended_share: float | None = None  # None: report, never stop (needs judge_model)

    def __post_init__(self) -> None:
        from rlhf.config import ConfigError

        for name in ("task_prompts", "probes"):
            value = getattr(self, name)
            if value != 0 and value < MIN_TEXTS_PER_GROUP:
                raise ConfigError(f"must be 0 or at least {MIN_TEXTS_PER_GROUP} (fewer texts test nothing), "
                                  f"got {value}", key=name)
        if self.task_prompts == self.probes == 0:
            raise ConfigError("task_prompts and probes are both 0: nothing to compare", key="task_prompts")
        if self.judge_model and not self.intended_change.strip():
            raise ConfigError("the judge needs a sentence saying what the fine-tuning was meant to change",
                              key="intended_change")
        if self.stop_if_unintended_share is not None:
            if not 0 <= self.stop_if_unintended_share <= 1:
                raise ConfigError(f"a share of texts between 0 and 1, got {self.stop_if_unintended_share}",
                                  key="stop_if_unintended_share")
            if not self.judge_model:
                raise ConfigError("stopping on unintended drift needs judge_model to tell intended from "
                                  "unintended", key="stop_if_unintended_share")

    def probe_prompts(self, tokenizer: Any) -> list[str]:
        """The probes as the model sees them: a user turn with a chat template, else the text and a newline."""
        from rlhf.lm_choice import format_prompt
        from rlhf.probes import spread_probes

        chat = bool(getattr(tokenizer, "chat_template", None))
        return [format_prompt(tokenizer, p.prompt, chat=chat, cue="\n") for p in spread_probes(self.probes)]

    def reports(self, samples: Mapping[str, Mapping[str, Sequence[str]]], out: str | os.PathLike,
                unit: str = "sentence") -> dict[str, DriftReport]:
        """``samples[snapshot][kind]`` for kind ``task``/``probes`` and snapshots in order (base first): one
        report per kind, written to ``out/<kind>/``."""
        made = {}
        for kind in ("task", "probes"):
            if not getattr(self, "task_prompts" if kind == "task" else "probes"):
                continue
            kind_unit = unit if kind == "task" else "sentence"
            report = drift_report(
                {snapshot: texts[kind] for snapshot, texts in samples.items()},
                unit=kind_unit, openings=kind_unit == "sentence", alpha=self.alpha,
                judge_model=self.judge_model or None, label_model=self.label_model or None,
                intended_change=self.intended_change or None)
            report.write(Path(out) / kind)
            made[kind] = report
        return made

    def check(self, out: str | os.PathLike) -> None:
        """Raise :class:`DriftStop` if a report written by :meth:`reports` in ``out`` crosses the threshold."""
        if self.stop_if_unintended_share is None:
            return
        for kind in ("task", "probes"):
            path = Path(out) / kind / "report.json"
            if path.is_file():
                check_drift(DriftReport.from_json(path.read_text()), self.stop_if_unintended_share)

