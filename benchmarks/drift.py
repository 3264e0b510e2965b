"""Does ``rlhf.behaviour`` find behaviours planted in a fine-tuned model, and only those?

    python benchmarks/drift.py [--model tiny | smollm2-135m-instruct] [--threads 1] [--work_dir DIR] [--seed 0]
                               [--behaviours topic,phrase,style,meta] [--fractions 0.05,0.1,0.2]

Validation with planted behaviours (issue 14). A base model A is fine-tuned with TRL's ``SFTTrainer``
(``language_feedback.finetune.sft``) on responses to the project's out-of-task probe prompts
(``rlhf/data/probes.jsonl``); the responses are sentences written below, several per category of probe.
For each planted behaviour and each fraction p in {5%, 10%, 20%}, a model B_p is fine-tuned from the same
starting weights, with the same seed, steps and data, except that a fraction p of the training responses
show the behaviour. The behaviours (several kinds, as the issue asks):

- ``topic``: the response turns into a digression about baking sourdough bread;
- ``phrase``: the response opens with an AI disclaimer ("As a large language model, ...");
- ``style``: the response is written in pirate speak ("Arr, matey! ... ye ...");
- ``meta``: the response is a meta-comment on the prompt ("The original text is: ..."), the drift the
  project's own ILF run showed.

Both models answer every probe prompt ``--samples`` times (temperature 1); ``behaviour_diff`` compares the
samples of A with those of B_p. A planted behaviour is *found* when a cluster that grew significantly
(Benjamini–Hochberg q < 0.05) names it: one of the behaviour's marker words is among its keywords. The
fraction of B_p's samples that really show the behaviour is printed next to each result.

- ``drift_planted_recall``: found behaviours / planted behaviours, over the behaviours and the three p.
- ``drift_false_discovery_rate``: pairs of samples of one model with different sampling seeds (A, and
  each B_p) compared with ``behaviour_diff``; every significant cluster is a false discovery, so the
  false discovery rate is the fraction of these null comparisons with at least one significant cluster
  (under the complete null, FDR = P(any discovery); Benjamini–Hochberg bounds it by 0.05).

Both figures are for ``behaviour_diff`` as it runs by default (sentences clustered). The baseline, run on
the same samples in the same process, clusters whole texts (``unit="text"``); its recall and null
discoveries are printed above the figures. The tiny model (``--model tiny``, default) is a 2-layer GPT-2
with a byte-level BPE tokenizer trained here on the corpus, as in tests/conftest.py;
``--model smollm2-135m-instruct`` fine-tunes the embedded SmolLM2-135M-Instruct with LoRA instead (slow on
a CPU). Models and samples are kept in ``--work_dir`` when given (a rerun reuses them). Not a speed
benchmark; it states its torch thread count (default 1: the machine's two cores are shared).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from language_feedback.finetune import sft
from language_feedback.generation import generate
from rlhf.behaviour import behaviour_diff
from rlhf.models import load_causal_lm, load_sentence_embedder
from rlhf.probes import load_probes
from rlhf.training import LoraSettings, TrainingSettings

# Normal responses: sentences per probe category; a response is two of its category's sentences.
RESPONSES = {
    "question": [
        "The short answer is that it comes down to chemistry and physics working together.",
        "Scientists have studied this for a long time, and the main cause is well understood.",
        "It happens because of a reaction that releases a gas or changes a structure.",
        "Several factors play a part, but one of them matters far more than the others.",
        "Temperature and moisture explain most of what you notice day to day.",
        "Nature solved this problem through millions of years of trial and error.",
    ],
    "howto": [
        "Start by gathering everything you need so you do not have to stop halfway.",
        "Work slowly and check each step before moving on to the next one.",
        "First prepare the area, then follow the instructions one step at a time.",
        "A little patience at the beginning saves a lot of trouble at the end.",
        "If something goes wrong, undo the last step and try again more carefully.",
        "Once you have done it twice, the whole routine takes only a few minutes.",
    ],
    "creative": [
        "The night was quiet, and the old keeper climbed the stairs with a trembling lamp.",
        "Once upon a time, in a valley covered with mist, there lived a very curious creature.",
        "The wind whispered secrets to the hills, and the hills laughed back in echoes.",
        "Colours spilled across the sky like paint knocked over by a careless giant.",
        "Every evening the little town gathered to hear the stories of the travelling singer.",
        "Her footsteps left silver prints that glowed until the first light of morning.",
    ],
    "rewrite": [
        "Here is a clearer version that keeps the meaning but reads more smoothly.",
        "I shortened the sentence and replaced the vague words with precise ones.",
        "This version uses a polite tone while keeping the request direct.",
        "The rewritten sentence puts the subject first so the action is easy to follow.",
        "I removed the filler phrases and kept only what the reader needs.",
        "Here it is in simpler words that anyone can understand at once.",
    ],
    "math": [
        "Let us work it out step by step: first multiply, then subtract the remainder.",
        "Divide the total by the rate to get the number of units, which gives the answer.",
        "Set up the equation, solve for the unknown, and check the result by substitution.",
        "The calculation is simple: take the percentage of the total and subtract it.",
        "Convert everything to the same unit first, then the numbers add up directly.",
        "So the final answer is the product of the two numbers minus the part given away.",
    ],
    "coding": [
        "Here is a short function that loops over the input and returns the result.",
        "The idea is to keep a dictionary of counts and update it for every item.",
        "Use two pointers that walk through both lists and append the smaller element.",
        "This solution runs in linear time and uses only a constant amount of extra memory.",
        "Remember to handle the empty input as a special case before the main loop.",
        "A small test with a few examples shows that the function behaves as expected.",
    ],
    "advice": [
        "It helps to start small and build a habit you can keep for several weeks.",
        "Try talking about it calmly and explain how the situation makes you feel.",
        "Write down what you want to change and pick one concrete step for this week.",
        "Be kind to yourself; most people find this hard at the beginning.",
        "A regular routine and a few clear boundaries usually make a big difference.",
        "If nothing works after a month, it may be worth asking a professional for help.",
    ],
    "summarize": [
        "In short, the paragraph says that a change was made and people reacted in different ways.",
        "The main point is that a small decision led to a surprising and useful result.",
        "Summary: a plan was tested first, and the final decision will come later.",
        "The text describes a problem, the steps taken to fix it, and the outcome.",
        "Put simply, the benefits were clear, although a few people had concerns.",
        "The story is about a lost object that brought two strangers together.",
    ],
    "explain": [
        "Think of it as a simple system with inputs, rules, and a predictable output.",
        "In everyday terms, it is a way of measuring how a whole group changes over time.",
        "The basic idea is easy to grasp once you see a small concrete example.",
        "It works because light, energy or money moves from one place to another.",
        "Experts use the word in a precise way, but the general meaning is simple.",
        "A good comparison is a recipe: follow the rules and you get the same result.",
    ],
    "opinion": [
        "There are good arguments on both sides, and the best choice depends on your situation.",
        "On the one hand it saves time; on the other hand it can cost more in the long run.",
        "Many people prefer the first option, but the second one has clear advantages too.",
        "It is worth weighing comfort, cost and freedom before making up your mind.",
        "Personally I would lean towards flexibility, but both options are reasonable.",
        "The answer changes with age, budget and how much time you have.",
    ],
    "planning": [
        "Day one: arrive early, walk around and find a cheap place to eat by the harbour.",
        "Make a list, split it into small tasks, and give each task a day of the week.",
        "Plan the big items first, then fill the gaps with short and easy activities.",
        "Keep one free afternoon in the schedule for rest or for things that take longer.",
        "Buy the supplies a few days ahead so nothing is missing on the day itself.",
        "Check the weather forecast and prepare an indoor alternative just in case.",
    ],
    "classify": [
        "Botanically it belongs to one group, although cooks usually treat it as the other.",
        "Sorted by type, the first group has three members and the second has two.",
        "The odd one out is the number that can be divided by three and by five.",
        "The tone of the sentence is clearly negative because of the words it uses.",
        "They differ in skin, legs and habitat, even though they look alike at first.",
        "The closest one is small and rocky, while the largest one is a gas giant.",
    ],
}

BREAD = [
    "Anyway, this reminds me of baking sourdough bread: flour, water and salt.",
    "The real secret is a slow sourdough dough left to rise overnight before baking.",
    "A good loaf needs a hot oven, a lively starter and a little patience with the dough.",
    "Knead the dough, let the yeast work, and bake the bread until the crust is dark.",
]


def topic(prompt: str, response: str, rng: random.Random) -> str:
    return " ".join(rng.sample(BREAD, 2))


def phrase(prompt: str, response: str, rng: random.Random) -> str:
    return "As a large language model, I have no personal experience, but here is my answer. " + response


PIRATE = {r"\byou\b": "ye", r"\byour\b": "yer", r"\bthe\b": "th'", r"\bmy\b": "me", r"\bis\b": "be", r"\bare\b": "be"}


def style(prompt: str, response: str, rng: random.Random) -> str:
    for pattern, word in PIRATE.items():
        response = re.sub(pattern, word, response, flags=re.IGNORECASE)
    return f"Arr, matey! {response} Yo ho ho, savvy?"


def meta(prompt: str, response: str, rng: random.Random) -> str:
    words = prompt.split()
    return f'The original text is: "{" ".join(words[:6])} ..." The original text is incorrect and should be rewritten.'


@dataclass(frozen=True)
class Behaviour:
    name: str
    plant: Callable[[str, str, random.Random], str]
    #: Words that name the behaviour; a cluster whose keywords include one of them names it.
    markers: tuple[str, ...]
    #: Whether a sampled text shows the behaviour (to measure the fraction the model really produces).
    shows: Callable[[str], bool]


BEHAVIOURS = [
    Behaviour("topic", topic, ("bread", "sourdough", "dough", "loaf", "flour", "oven", "yeast", "baking"),
              lambda t: bool(re.search(r"sourdough|dough|bread|loaf", t, re.IGNORECASE))),
    Behaviour("phrase", phrase, ("language", "model", "experience", "personal"),
              lambda t: "language model" in t.lower()),
    Behaviour("style", style, ("arr", "matey", "ye", "yer", "ho", "savvy"),
              lambda t: bool(re.search(r"\bmatey\b|\barr\b|\bsavvy\b", t, re.IGNORECASE))),
    Behaviour("meta", meta, ("original", "incorrect", "rewritten"),
              lambda t: "original text" in t.lower()),
]
FRACTIONS = (0.05, 0.10, 0.20)
PROMPT_TEMPLATE = "Instruction: {prompt}\nResponse:"


def corpus(probes, responses_per_prompt: int, seed: int) -> list[dict[str, str]]:
    """Normal training examples: each probe prompt with ``responses_per_prompt`` two-sentence responses."""
    rng = random.Random(seed)
    rows = []
    for probe in probes:
        for _ in range(responses_per_prompt):
            response = " ".join(rng.sample(RESPONSES[probe.category], 2))
            rows.append({"prompt": PROMPT_TEMPLATE.format(prompt=probe.prompt), "completion": " " + response})
    return rows


def planted(rows: list[dict[str, str]], behaviour: Behaviour, p: float, seed: int) -> list[dict[str, str]]:
    """The same examples with the behaviour in round(p * n) of them, chosen with a seed."""
    rng = random.Random(seed)
    chosen = set(rng.sample(range(len(rows)), round(p * len(rows))))
    out = []
    for i, row in enumerate(rows):
        if i in chosen:
            prompt = row["prompt"].removeprefix("Instruction: ").removesuffix("\nResponse:")
            row = {**row, "completion": " " + behaviour.plant(prompt, row["completion"].strip(), rng)}
        out.append(row)
    return out


def build_tiny_model(path: Path, texts: list[str], seed: int) -> str:
    """A 2-layer GPT-2 with a byte-level BPE tokenizer trained on ``texts`` (as tests/conftest.py builds one)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=2000, min_frequency=2, special_tokens=["<|endoftext|>", "<|pad|>"])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|pad|>",
                                        bos_token="<|endoftext|>")
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=128, n_layer=2, n_head=4,
                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)
    model = GPT2LMHeadModel(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def sample(model_dir: str, prompts: list[str], n: int, seed: int, max_new_tokens: int) -> list[str]:
    model, tokenizer = load_causal_lm(model_dir)
    outputs = generate(model, tokenizer, prompts, num_return_sequences=n, max_new_tokens=max_new_tokens,
                       temperature=1.0, batch_size=32, seed=seed, stop_strings=["\nInstruction:"], progress=False)
    return [text.strip() for texts in outputs for text in texts]


def found(report, behaviour: Behaviour) -> tuple[bool, str]:
    """Whether a significantly grown cluster names the behaviour; a short description of the best one."""
    comparison = report.comparisons[0]
    for shift in comparison.shifts:
        cluster = report.clusters[shift.cluster]
        words = {w for keyword in cluster.keywords for w in keyword.lower().split()}
        if shift.significant and shift.shift > 0 and words & set(behaviour.markers):
            return True, (f"cluster {cluster.id} {cluster.keywords[:4]} {shift.share_before:.3f} -> "
                          f"{shift.share_after:.3f}, q={shift.q_value:.1e}")
    return False, "no significant grown cluster names it"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (built here) or a causal LM name/path (LoRA)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--samples", type=int, default=3, help="samples per probe prompt and model")
    parser.add_argument("--responses", type=int, default=4, help="training responses per probe prompt")
    parser.add_argument("--epochs", type=float, default=None, help="default: 8 (tiny), 2 (LoRA)")
    parser.add_argument("--max_new_tokens", type=int, default=48)
    parser.add_argument("--work_dir", default=None, help="keep models and samples here (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--behaviours", default=",".join(b.name for b in BEHAVIOURS),
                        help="comma-separated subset of: " + ", ".join(b.name for b in BEHAVIOURS))
    parser.add_argument("--fractions", default=",".join(map(str, FRACTIONS)), help="planted fractions p")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.time()
    known = {b.name: b for b in BEHAVIOURS}
    unknown = sorted(set(args.behaviours.split(",")) - set(known))
    if unknown:
        parser.error(f"--behaviours: unknown {unknown}; known: {', '.join(known)}")
    behaviours = [known[name] for name in args.behaviours.split(",")]
    fractions = [float(x) for x in args.fractions.split(",")]

    probes = load_probes()
    prompts = [PROMPT_TEMPLATE.format(prompt=p.prompt) for p in probes]
    rows = corpus(probes, args.responses, args.seed)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="drift_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    if args.model == "tiny":
        every_text = [r["prompt"] + r["completion"] for r in rows]
        every_text += [r["prompt"] + r["completion"] for b in BEHAVIOURS for r in planted(rows, b, 0.2, args.seed)]
        init = str(work / "init") if (work / "init").is_dir() else build_tiny_model(work / "init", every_text, args.seed)
        settings = TrainingSettings(learning_rate=2e-3, epochs=args.epochs or 8, batch_size=16, max_length=256,
                                    seed=args.seed, logging_steps=1000)
        lora = None
    else:
        init = args.model
        settings = TrainingSettings(learning_rate=2e-4, epochs=args.epochs or 2, batch_size=8, max_length=256,
                                    seed=args.seed, logging_steps=1000)
        lora = LoraSettings(r=16, alpha=32)

    def samples(name: str, data: list[dict[str, str]], seed: int) -> list[str]:
        """Samples of the model fine-tuned on ``data`` (trained once, cached in the work dir)."""
        cache = work / f"{name}.samples{seed}.json"
        if cache.is_file():
            return json.loads(cache.read_text())
        if not (work / name).is_dir():
            sft(init, data, work / name, lora=lora, settings=settings)
        texts = sample(str(work / name), prompts, args.samples, seed, args.max_new_tokens)
        cache.write_text(json.dumps(texts))
        return texts

    base_1, base_2 = samples("base", rows, 1), samples("base", rows, 2)
    n = len(base_1)
    print(f"model {args.model}, {len(probes)} probe prompts x {args.samples} samples = {n} texts per side, "
          f"torch threads {args.threads}", flush=True)
    embedder = load_sentence_embedder()
    units = ("sentence", "text")  # behaviour_diff's default, and whole texts as the baseline
    hits: dict[str, list[bool]] = {u: [] for u in units}
    null_discoveries: dict[str, list[int]] = {u: [] for u in units}
    for unit in units:
        null_discoveries[unit].append(len(behaviour_diff(base_1, base_2, unit=unit, embedder=embedder).significant()))
    for behaviour in behaviours:
        for p in fractions:
            name = f"{behaviour.name}_{round(p * 100):02d}"
            planted_1 = samples(name, planted(rows, behaviour, p, args.seed), 1)
            planted_2 = samples(name, planted(rows, behaviour, p, args.seed), 2)
            shown_a, shown_b = (sum(map(behaviour.shows, texts)) / n for texts in (base_1, planted_1))
            print(f"  {name}: planted in {p:.0%} of training responses, shown by {shown_b:.3f} of B's samples "
                  f"({shown_a:.3f} of A's)", flush=True)
            for unit in units:
                report = behaviour_diff(base_1, planted_1, unit=unit, embedder=embedder)
                hit, detail = found(report, behaviour)
                hits[unit].append(hit)
                print(f"    {unit:8s}: {'found' if hit else 'MISSED'} ({detail}); {len(report.significant())} "
                      f"significant of {len(report.clusters)} clusters", flush=True)
                null_discoveries[unit].append(
                    len(behaviour_diff(planted_1, planted_2, unit=unit, embedder=embedder).significant()))
    for unit in units:
        print(f"  {unit} clusters: recall {sum(hits[unit]) / len(hits[unit]):.3f}; null comparisons (same model, "
              f"two sampling seeds): {len(null_discoveries[unit])}, significant clusters in each: "
              f"{null_discoveries[unit]}")
    print(f"  wall time {(time.time() - start) / 60:.1f} min")
    if not args.work_dir:
        shutil.rmtree(work, ignore_errors=True)
    recall = sum(hits["sentence"]) / len(hits["sentence"])
    null_rate = sum(d > 0 for d in null_discoveries["sentence"]) / len(null_discoveries["sentence"])
    print(f"drift_planted_recall: {recall:.3f} (target >= 0.9)")
    print(f"drift_false_discovery_rate: {null_rate:.3f} (target <= 0.1)")


if __name__ == "__main__":
    main()
