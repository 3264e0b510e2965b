"""Critic-LM feedback on programs: a causal LM reads a program and its test results and writes feedback in words.

The third :class:`~language_feedback.code_feedback.FeedbackProvider` for code, next to human annotations and
execution feedback. Generation goes through :func:`language_feedback.generation.generate`, so it is batched
and, with an accelerator, sharded across processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from language_feedback.code_feedback import Draft, FeedbackProvider
from language_feedback.generation import generate
from language_feedback.prompts import code_critic_prompt
from rlhf.lm_choice import format_prompt, resolve_chat_template


class CriticFeedback(FeedbackProvider):
    """Feedback from a causal LM prompted with a program and its test results.

    ``use_chat_template=None`` wraps the prompt as a user message when the tokenizer has a chat
    template (instruction-tuned critics answer far better that way) and uses it raw otherwise.
    """

    name = "critic"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        batch_size: int = 8,
        use_chat_template: bool | None = None,
        accelerator=None,
        progress: bool = True,
    ):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        self.accelerator, self.progress = accelerator, progress
        self.use_chat_template = resolve_chat_template(tokenizer, use_chat_template, "critic")

    def prompt(self, program: str, test_result: str) -> str:
        """The exact text the critic model continues."""
        return format_prompt(self.tokenizer, code_critic_prompt(program, test_result), chat=self.use_chat_template,
                             cue="\n\nFEEDBACK:\n")

    def __call__(self, drafts: Sequence[Draft]) -> list[str]:
        """One feedback string per draft (stripped; may be empty if the critic writes nothing)."""
        prompts = [self.prompt(d.program, f"{d.result.status}: {d.result.message}") for d in drafts]
        outputs = generate(
            self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
            batch_size=self.batch_size, accelerator=self.accelerator, progress=self.progress,
        )
        return [out[0].strip() for out in outputs]
