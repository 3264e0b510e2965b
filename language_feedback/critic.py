"""Critic-LM feedback on programs: a causal LM reads a program and its test results and writes feedback in words.

The third feedback provider for code, next to human annotations and execution feedback
(``language_feedback.code_feedback``). Generation goes through :func:`language_feedback.generation.generate`,
so it is batched and, with an accelerator, sharded across processes.
"""

from __future__ import annotations

from collections.abc import Sequence

from language_feedback.generation import generate
from language_feedback.prompts import code_critic_prompt
from rlhf.lm_choice import format_prompt, resolve_chat_template


class CriticFeedback:
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
    ):
        self.model, self.tokenizer = model, tokenizer
        self.max_new_tokens, self.temperature, self.batch_size = max_new_tokens, temperature, batch_size
        self.accelerator = accelerator
        self.use_chat_template = resolve_chat_template(tokenizer, use_chat_template, "critic")

    def prompt(self, program: str, test_result: str) -> str:
        """The exact text the critic model continues."""
        return format_prompt(self.tokenizer, code_critic_prompt(program, test_result), chat=self.use_chat_template,
                             cue="\n\nFEEDBACK:\n")

    def __call__(self, programs: Sequence[str], test_results: Sequence[str], *, progress: bool = True) -> list[str]:
        """One feedback string per program (stripped; may be empty if the critic writes nothing)."""
        if len(programs) != len(test_results):
            raise ValueError(f"got {len(programs)} programs but {len(test_results)} test results")
        prompts = [self.prompt(p, r) for p, r in zip(programs, test_results)]
        outputs = generate(
            self.model, self.tokenizer, prompts, max_new_tokens=self.max_new_tokens, temperature=self.temperature,
            batch_size=self.batch_size, accelerator=self.accelerator, progress=progress,
        )
        return [out[0].strip() for out in outputs]
