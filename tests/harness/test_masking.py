"""mask_secrets: what is masked before anything reaches the model, and what is left alone."""

from __future__ import annotations

import pytest

from harness.agent.masking import environment_secrets, mask_secrets

FORMATS = {
    "private key": ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU\n"
                    "-----END OPENSSH PRIVATE KEY-----"),
    "Anthropic key": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "OpenAI-style key": "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "AWS access key id": "AKIAIOSFODNN7EXAMPLE",
    "AWS secret key": "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "GitHub token": "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
    "Hugging Face token": "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz012345",
    "bearer token": "Authorization: Bearer abcdef0123456789abcdef",
    "credential in a URL": "https://user:hunter2hunter2@example.org/repo.git",
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_known_secret_formats_are_masked_and_named(kind):
    text = f"before\n{FORMATS[kind]}\nafter"
    done = mask_secrets(text)
    assert done.count >= 1 and f"[masked: {kind}]" in done.text
    assert "before" in done.text and "after" in done.text
    secretish = FORMATS[kind].split()[-1].split("@")[0].split(":")[-1]
    assert secretish not in done.text


def test_values_of_the_harness_credential_variables_are_masked(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plain-looking-value-42")
    monkeypatch.setenv("SHORT_KEY", "1")  # too short to mask without masking ordinary text
    assert "plain-looking-value-42" in environment_secrets()
    done = mask_secrets("a run printed plain-looking-value-42 twice: plain-looking-value-42; k=1")
    assert done.count == 2 and "plain-looking-value-42" not in done.text and "k=1" in done.text


def test_an_extra_secret_given_by_the_caller_is_masked():
    done = mask_secrets("key used: local-endpoint-key-xyz", extra=("local-endpoint-key-xyz",))
    assert done.count == 1 and "local-endpoint-key-xyz" not in done.text


def test_ordinary_experiment_output_is_left_alone():
    text = ("Traceback (most recent call last):\n  File \"/tmp/ws/experiment.py\", line 12, in main\n"
            "commit 3f9a2c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a3f\n"
            "explained variance 0.912  ce_loss_score 0.873  L0 32.0  (143 s)\n"
            "sha256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
            "saved to run_1/final_info.json; key_hash 1a2b3c4d5e6f7a8b; task_key=sparse_probing\n")
    done = mask_secrets(text)
    assert done.count == 0 and done.text == text
