"""Tokenizer setup from the GGUF and chat templates of other model families (server/llm/tokenizer.py).

Templates render in transformers' Jinja environment: loop controls, its ``tojson``, the
``raise_exception`` / ``strftime_now`` globals, special tokens and ``tools`` as variables. The
templates below are (trimmed) real ones of Llama 3, Llama 3.1, Mistral and Qwen-style models.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime

import jinja2
import pytest

from server.llm.gguf_weights import open_reader
from server.llm.tokenizer import PRE_TOKENIZERS, ChatTemplate, GGUFTokenizer, UnsupportedTokenizerError
from tests.support.llm_fixtures import tokenizer, weights

SPECIALS = {"bos_token": "<s>", "eos_token": "</s>"}

# Meta-Llama-3-8B-Instruct's template, verbatim: bos_token, the trim filter, loop.index0
LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
    "{{ content }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)

# Mistral-7B-Instruct-v0.1's template, verbatim: raise_exception on roles it cannot render
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
    "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}"
    "{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles "
    "are supported!') }}{% endif %}{% endfor %}"
)

# Llama-3.1-style tools block (trimmed): strftime_now, `tools is not none`, tojson(indent=4)
LLAMA31_TOOLS = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

# Qwen-style: the last user turn found with {% break %}, system turns skipped with {% continue %}
LOOPCONTROLS = """{%- set ns = namespace(last_user=-1) %}
{%- for message in messages[::-1] %}
    {%- if message.role == 'user' %}
        {%- set ns.last_user = messages|length - 1 - loop.index0 %}
        {%- break %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- continue %}
    {%- endif %}
    {{- message.role + ('*' if loop.index0 == ns.last_user else '') + ': ' + message.content + '\\n' }}
{%- endfor %}
{%- if documents %}{{ raise_exception('no documents expected') }}{% endif %}
{{- custom_suffix }}
"""

CHAT = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello"},
    {"role": "user", "content": " Again "},
]


def test_llama3_template_with_bos_token():
    out = ChatTemplate(LLAMA3, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}).render(CHAT[1:3])
    assert out == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_mistral_template_renders_and_raise_exception_refuses_bad_roles():
    t = ChatTemplate(MISTRAL, SPECIALS)
    assert t.render(CHAT[1:]) == "<s>[INST] Hi [/INST]Hello</s>[INST]  Again  [/INST]"
    with pytest.raises(jinja2.exceptions.TemplateError, match="Conversation roles must alternate"):
        t.render(CHAT)  # a system turn first


def test_tools_render_with_transformers_tojson_and_strftime_now():
    tool = {"name": "get_weather", "description": "Météo <today> & 'tomorrow'",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
    t = ChatTemplate(LLAMA31_TOOLS, {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"})
    before = datetime.now().strftime("%d %b %Y")
    out = t.render(CHAT[:2], tools=[tool])
    after = datetime.now().strftime("%d %b %Y")
    # transformers' tojson: no HTML escaping, no \\u escapes, the key order kept, indent honoured
    assert json.dumps(tool, indent=4, ensure_ascii=False) + "\n\n" in out
    assert out.startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nEnvironment: ipython\n")
    assert f"Today Date: {before}\n\n" in out or f"Today Date: {after}\n\n" in out
    assert "Be brief.<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>" in out
    no_tools = t.render(CHAT[1:2], date_string="26 Jul 2024")
    assert no_tools == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_loop_controls_and_undefined_variables_render_as_in_transformers():
    t = ChatTemplate(LOOPCONTROLS, SPECIALS)
    assert t.render(CHAT) == "user: Hi\nassistant: Hello\nuser*:  Again \n"  # undefined custom_suffix: empty
    assert t.render(CHAT, custom_suffix="<end>").endswith("<end>")
    with pytest.raises(jinja2.exceptions.TemplateError, match="no documents expected"):
        t.render(CHAT, documents=[{"text": "x"}])


def test_generation_tag_renders_its_body():
    t = ChatTemplate("{% for m in messages %}{% generation %}{{ m.content }}{% endgeneration %}|{% endfor %}")
    assert t.render(CHAT[1:3]) == "Hi|Hello|"


def test_dict_namespace_and_none_fields_as_in_transformers():
    t = ChatTemplate(
        "{%- set d = dict(a=1) %}{%- set ns = namespace(n=0) %}{%- for m in messages %}"
        "{%- if m.tool_calls is defined %}{% set ns.n = ns.n + 1 %}{% endif %}{%- endfor %}"
        "{{ d.a }}/{{ ns.n }}/{{ dict.fromkeys(['x'], 2).x }}"
    )
    msgs = [{"role": "assistant", "content": "a", "tool_calls": None}, {"role": "assistant", "content": "b",
            "tool_calls": [{"name": "f"}]}]
    assert t.render(msgs) == "1/1/2"


def test_template_cannot_reach_python_internals():
    with pytest.raises(jinja2.exceptions.SecurityError):
        ChatTemplate("{{ messages.__class__.__mro__ }}").render(CHAT)
    with pytest.raises(jinja2.exceptions.SecurityError):
        ChatTemplate("{% set ns = namespace(__class__=1) %}").render(CHAT)


def test_gguf_template_gets_the_models_special_tokens():
    tok = tokenizer()
    assert tok.chat_template.special_tokens["bos_token"] == "<|im_start|>"
    assert tok.chat_template.special_tokens["eos_token"] == "<|im_end|>"
    out = tok.apply_chat_template([{"role": "user", "content": "Hi"}])
    assert out.endswith("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")


def test_bos_written_by_the_template_is_not_doubled():
    tok = copy.copy(tokenizer())
    tok.add_bos = True
    bos = tok.chat_template.special_tokens["bos_token"]
    ids = tok.encode(bos + "user\nHi")
    assert ids[0] == tok.bos_id and ids[1] != tok.bos_id
    assert tok.encode("Hi")[0] == tok.bos_id


class _Field:
    def __init__(self, value):
        self.value = value

    def contents(self):
        return self.value


class _Reader:
    def __init__(self, fields):
        self.fields = fields


@pytest.mark.parametrize("pre", ["llama-bpe", "qwen2", "default"])
def test_unknown_pre_tokenizer_is_refused_naming_it_and_the_supported_ones(pre):
    fields = dict(open_reader(str(weights().path)).fields)
    fields["tokenizer.ggml.pre"] = _Field(pre)
    expected = re.escape(f"tokenizer.ggml.pre='{pre}' is not supported")
    with pytest.raises(UnsupportedTokenizerError, match=expected) as exc:
        GGUFTokenizer(_Reader(fields))
    assert all(repr(k) in str(exc.value) for k in PRE_TOKENIZERS)
    del fields["tokenizer.ggml.pre"]
    with pytest.raises(UnsupportedTokenizerError, match=re.escape("has no tokenizer.ggml.pre")):
        GGUFTokenizer(_Reader(fields))


def test_smollm_pre_tokenizer_splits_digits():
    tok = tokenizer()
    assert [tok.decode([i]) for i in tok.encode("year 2024")][-4:] == ["2", "0", "2", "4"]


@pytest.mark.parametrize(
    ("source", "messages", "kwargs"),
    [
        (LLAMA3, CHAT[1:], {}),
        (MISTRAL, CHAT[1:], {}),
        (LLAMA31_TOOLS, CHAT, {"date_string": "26 Jul 2024", "tools": [{"name": "f", "description": "<é>"}]}),
        (LOOPCONTROLS, CHAT, {"custom_suffix": "!"}),
    ],
    ids=["llama3", "mistral", "llama31-tools", "loopcontrols"],
)
def test_renders_what_transformers_renders(source, messages, kwargs):
    chat_utils = pytest.importorskip("transformers.utils.chat_template_utils")
    ours = ChatTemplate(source, SPECIALS).render(messages, add_generation_prompt=True, **kwargs)
    theirs, _ = chat_utils.render_jinja_template(
        [messages], chat_template=source, add_generation_prompt=True, **SPECIALS, **kwargs
    )
    assert ours == theirs[0]
