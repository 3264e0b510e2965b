"""language_feedback: imitation learning from language feedback (ILF) for summarization and code.

Modules: data (``summarization_data``, ``code_data``, ``feedback_world``: a world with a ground truth),
``prompts``, feedback providers (``code_feedback``, ``critic``), ``generation``, ``selectors``, ``finetune``,
``sandbox`` and ``execution_reward`` (unforgeable verdicts), the experiments (``summarization_ilf``,
``code_ilf``, ``text_quickstart``, ``sample_efficiency``, ``reward_model_training``, ``grpo``) and
``evaluation`` (win rates, selector diagnostics).
"""

from rlhf.exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "SummarizationILF": "language_feedback.summarization_ilf",
    "SummarizationILFConfig": "language_feedback.summarization_ilf",
    "CodeILF": "language_feedback.code_ilf",
    "CodeILFConfig": "language_feedback.code_ilf",
    "TextQuickstart": "language_feedback.text_quickstart",
    "TextQuickstartConfig": "language_feedback.text_quickstart",
    "ExecutionReward": "language_feedback.execution_reward",
    "make_selector": "language_feedback.selectors",
    "generate": "language_feedback.generation",
    "sft": "language_feedback.finetune",
})
