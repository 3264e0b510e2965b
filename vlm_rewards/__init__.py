"""vlm_rewards package."""
