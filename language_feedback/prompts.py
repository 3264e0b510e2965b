"""Prompt templates for every language-feedback task, in one module.

Each task owns a section; edit only your own section.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------------------------------------
# Summarization (SLF5K-style ILF; Scheurer et al. 2023)
# ---------------------------------------------------------------------------------------------
# Completions start with a space after the prompt's final "TL;DR:" so the prompt/completion boundary
# tokenizes the same way for generation, fine-tuning and reward models.

SUMMARIZE_TEMPLATE = "Title: {title}\n\nText: {post}\n\nTL;DR:"

REFINE_WITH_FEEDBACK_TEMPLATE = (
    "Write an excellent summary that incorporates the feedback on the given summary and is better than "
    "the given summary.\n\nTitle: {title}\n\nText: {post}\n\nSummary: {summary}\n\n"
    "Feedback on summary: {feedback}\n\nImproved TL;DR:"
)

# Ablation: the same request without the feedback, to measure what the feedback itself adds.
REFINE_WITHOUT_FEEDBACK_TEMPLATE = (
    "Write an excellent summary that is better than the given summary.\n\nTitle: {title}\n\nText: {post}\n\n"
    "Summary: {summary}\n\nImproved TL;DR:"
)

# For instruction-tuned models (a tokenizer with a chat template), every request is an instruction in a user
# message, and the summary is the assistant's reply. Asked for a TL;DR in the completion format above,
# SmolLM2-135M-Instruct rambled on for several sentences (81% of its summaries in the feedback world); asked
# this way, 15% had more than one sentence (48 test posts).
SUMMARIZE_REQUEST = "Summarize this post in one sentence."
SUMMARIZE_INSTRUCTION = SUMMARIZE_REQUEST + "\n\nTitle: {title}\n\nPost: {post}"
# The refinement request for a chat model: the summarize instruction, the post, the earlier summary, then the
# instruction again with the feedback as its last words. Measured in the feedback world with SmolLM2-135M-Instruct
# on the same 96 training posts x 4 refinements (2026-12-07, two sampling seeds), against the request "Rewrite the
# summary so that it follows the feedback. Reply with the new one-sentence summary only." stated before and after
# "Summary: ... Feedback: ...": good summaries among the refinements 0.04-0.06 -> 0.10-0.12, posts with at least
# one good refinement 0.10-0.14 -> 0.20-0.27, refinements with more than one sentence 0.50-0.52 -> 0.13;
# refinements that state the cost 0.25-0.26 -> 0.18 (asked to rewrite, the model retold the post, amount
# included). With the ablation's request below (no feedback), 0.09-0.11 state the cost. Earlier, the chat format
# itself had made refinements state what the feedback asks for 1.5 times as often as the completion-style
# template above.
REFINE_WITH_FEEDBACK_INSTRUCTION = (
    "{request}\n\nTitle: {title}\n\nPost: {post}\n\nAn earlier summary was: {summary}\n\n{request} {feedback}"
)
REFINE_WITHOUT_FEEDBACK_INSTRUCTION = (
    "{request}\n\nTitle: {title}\n\nPost: {post}\n\nAn earlier summary was: {summary}\n\n"
    "{request} Make it better than the earlier one."
)

# InstructRM (selectors.InstructRMSelector): the judge sees the input, the original output, the feedback
# and a candidate refinement, then one yes/no question; several phrasings are averaged.
# `{noun}` is what is being refined ("summary", "program").
INSTRUCTRM_TEMPLATE = (
    "Here is an input, an original {noun} written for it, feedback on that {noun}, and a new {noun}.\n\n"
    "Input:\n{context}\n\nOriginal {noun}:\n{initial}\n\nFeedback:\n{feedback}\n\nNew {noun}:\n{refinement}\n\n"
    "Question: {question} Answer Yes or No.\nAnswer:"
)
INSTRUCTRM_QUESTIONS = (
    "Does the new {noun} incorporate the feedback?",
    "Does the new {noun} address the feedback given on the original {noun}?",
    "Has the feedback been taken into account in the new {noun}?",
    "Does the new {noun} fix what the feedback asks to be fixed?",
)


def is_chat(tokenizer) -> bool:
    """Whether prompts for this tokenizer's model are chat turns (it has a chat template)."""
    return bool(getattr(tokenizer, "chat_template", None))


def _user_turn(tokenizer, text: str) -> str:
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True)


def summary_completion(text: str, tokenizer=None) -> str:
    """A summary as the completion of :func:`summarize_prompt`: after "TL;DR:" with a leading space, or as the
    assistant's reply of a chat model (no leading space)."""
    return text.strip() if is_chat(tokenizer) else " " + text.strip()


def summarize_prompt(title: str, post: str, tokenizer=None) -> str:
    """Prompt asking for a TL;DR of a post: with a ``tokenizer`` that has a chat template, an instruction in a
    user message formatted by that template; otherwise the completion-style template ending in "TL;DR:"."""
    if is_chat(tokenizer):
        return _user_turn(tokenizer, SUMMARIZE_INSTRUCTION.format(title=title.strip(), post=post.strip()))
    return SUMMARIZE_TEMPLATE.format(title=title.strip(), post=post.strip())


def refine_prompt(title: str, post: str, summary: str, feedback: str | None, tokenizer=None) -> str:
    """Prompt asking for an improved summary; ``feedback=None`` gives the no-feedback ablation.

    With a ``tokenizer`` that has a chat template, the request is an instruction in a user message, formatted
    by that template; otherwise the completion-style template that ends in "Improved TL;DR:".
    """
    fields = {"title": title.strip(), "post": post.strip(), "summary": summary.strip()}
    if feedback is not None:
        fields["feedback"] = feedback.strip()
    if is_chat(tokenizer):
        if feedback is None:
            instruction = REFINE_WITHOUT_FEEDBACK_INSTRUCTION.format(request=SUMMARIZE_REQUEST, **fields)
        else:
            instruction = REFINE_WITH_FEEDBACK_INSTRUCTION.format(request=SUMMARIZE_REQUEST, **fields)
        return _user_turn(tokenizer, instruction)
    return (REFINE_WITHOUT_FEEDBACK_TEMPLATE if feedback is None else REFINE_WITH_FEEDBACK_TEMPLATE).format(**fields)


def instructrm_prompts(context: str, initial: str, feedback: str, refinement: str, noun: str = "summary") -> list[str]:
    """One InstructRM prompt per question phrasing, each ending right before the yes/no answer token."""
    return [
        INSTRUCTRM_TEMPLATE.format(
            noun=noun, context=context.strip(), initial=initial.strip(), feedback=feedback.strip(),
            refinement=refinement.strip(), question=q.format(noun=noun),
        )
        for q in INSTRUCTRM_QUESTIONS
    ]

# ---------------------------------------------------------------------------------------------
# end of the summarization section
# ---------------------------------------------------------------------------------------------

# ---------------------------------------------------------------------------------------------
# Code (MBPP-style ILF; Chen et al. 2023/2024)
# ---------------------------------------------------------------------------------------------
# A program is `code_prompt(prompt) + completion`: the prompt (task docstring, then the signature) ends
# right after the signature's ":" and every completion (draft, refinement, fine-tuning target) starts
# with "\n". Ending the prompt on ":" keeps the prompt/completion boundary on a token boundary: a
# trailing "\n" would merge with the body's indentation into one BPE token, and the model would be
# fine-tuned on a different context than it sees when generating.

CODE_REFINE_TEMPLATE = "OLD CODE:\n{old_program}\n\nFEEDBACK:\n{feedback}\n\nREFINEMENT:\n{prompt}"

CODE_CRITIC_TEMPLATE = (
    "Here is a Python programming task, a program written for it, and the result of running its unit tests.\n\n"
    "PROGRAM:\n{program}\n\nTEST RESULT:\n{test_result}\n\n"
    "Explain in a few sentences what is wrong with the program and how to fix it."
)

# Generation stops at the end of the function: these start the next top-level statement.
CODE_STOP_STRINGS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\nassert ", "\n#", '\n"""', "\n```")


def code_prompt(prompt: str) -> str:
    """An MBPP/HumanEval prompt ending after the signature's ":" (trailing whitespace removed)."""
    return prompt.rstrip()


def code_completion(body: str) -> str:
    """A function body as a completion of :func:`code_prompt`: starts with a newline."""
    return body if body.startswith(("\n", "\r\n")) else "\n" + body


def code_refine_prompt(prompt: str, old_program: str, feedback: str) -> str:
    """π_Refine's input: the old program, the feedback on it, then the task prompt again to continue from."""
    return CODE_REFINE_TEMPLATE.format(
        old_program=old_program.strip("\n"), feedback=feedback.strip(), prompt=code_prompt(prompt)
    )


def code_critic_prompt(program: str, test_result: str) -> str:
    """The critic LM's input: the program and its test results; it answers with feedback in words."""
    return CODE_CRITIC_TEMPLATE.format(program=program.strip("\n"), test_result=test_result.strip())


# MBPP prompts in the format of Chen et al. (and of `mbpp_code_feedback.jsonl`): a docstring with the
# task and the first test as an example ("assert f(x) == y" shown as "f(x) = y"), then the code up to
# and including the signature (imports and helper functions come along).
MBPP_PROMPT_TEMPLATE = '"""\n{text}\n\n>>> Example: {example}\n"""\n\n{signature}\n'


def mbpp_prompt(text: str, first_test: str, signature: str) -> str:
    """The MBPP prompt for a task; ``signature`` is the reference code up to the entry point's ``def`` line."""
    example = re.sub(r"^\s*assert\s+", "", first_test).replace("==", "=", 1)
    return MBPP_PROMPT_TEMPLATE.format(text=text, example=example, signature=signature)


# ---------------------------------------------------------------------------------------------
# end of the code section
# ---------------------------------------------------------------------------------------------
