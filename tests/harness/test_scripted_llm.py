"""The scripted model speaks the OpenAI chat API the way litellm expects it."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
import litellm  # noqa: E402
import pytest  # noqa: E402

from harness.agent.scripted_llm import Entry, ScriptedLLM  # noqa: E402


def _post(url, payload):
    req = urllib.request.Request(url + "/chat/completions", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=10).read())


@pytest.mark.parametrize("stream", [False, True])
def test_litellm_reads_replies_in_order(stream):
    with ScriptedLLM([Entry("first"), Entry("second " * 300)]) as llm:
        texts = []
        for q in ("a", "b"):
            res = litellm.completion(model="openai/scripted", api_base=llm.url, api_key="x", stream=stream,
                                     messages=[{"role": "user", "content": q}])
            if stream:
                texts.append("".join(c.choices[0].delta.content or "" for c in res))
            else:
                texts.append(res.choices[0].message.content)
                assert res.usage.prompt_tokens >= 1
        assert texts == ["first", "second " * 300]
        assert llm.remaining == 0


def test_side_requests_and_repeats_do_not_consume_the_script():
    with ScriptedLLM([Entry("only")]) as llm:
        commit = _post(llm.url, {"messages": [{"role": "system", "content": "Write a one-line commit message"},
                                              {"role": "user", "content": "diff"}]})
        assert commit["choices"][0]["message"]["content"]
        msgs = [{"role": "user", "content": "q"}]
        assert _post(llm.url, {"messages": msgs})["choices"][0]["message"]["content"] == "only"
        assert _post(llm.url, {"messages": msgs})["choices"][0]["message"]["content"] == "only"
        assert [r["kind"] for r in llm.requests] == ["commit-message", "script", "repeat"]


def test_errors_expectations_and_exhaustion_are_http_errors():
    with ScriptedLLM([Entry(status=429), Entry("x", expect="Run 3")]) as llm:
        for expected in (429, 400, 500):
            with pytest.raises(urllib.error.HTTPError) as exc:
                _post(llm.url, {"messages": [{"role": "user", "content": f"Run 1 {expected}"}]})
            assert exc.value.code == expected
