"""Streaming markup filter and card rendering."""

from __future__ import annotations

import pytest

from core.grok.events import Card, Source
from core.grok.markup import CardRenderer, Citation, Element, MarkupFilter

CITE = '<grok:render card_id="{id}" card_type="citation" type="render_inline_citation"><argument name="citation_id">0</argument></grok:render>'


def run(chunks, tags=None, renderer=None, hold=False) -> str:
    kwargs = {} if tags is None else {"tags": tags}
    markup = MarkupFilter(**kwargs, render=renderer or (lambda element, final: ""), hold_unresolved=hold)
    return "".join(markup.feed(chunk) for chunk in chunks) + markup.finish()


def citation_card(card_id: str, url: str) -> Card:
    return Card(card_id, "render_inline_citation", {"id": card_id, "url": url, "cardType": "citation"})


MIXED = (
    "Intro a < b and x<y. "
    '<xaiArtifact title="doc" contentType="text/markdown"># Title\n<b>body</b></xaiArtifact>'
    "<xai:tool_usage_card><xai:tool_usage_card_id>1</xai:tool_usage_card_id>"
    "<xai:tool_name>web_search</xai:tool_name></xai:tool_usage_card>"
    'middle <grok:render card_id="i1" card_type="generated_image_card" type="render_generated_image">'
    '<argument name="prompt">a > b</argument></grok:render>'
    "<b>kept</b> <grok:renderer x='1'>kept too</grok:renderer> end <"
)
MIXED_EXPECTED = "Intro a < b and x<y. middle <b>kept</b> <grok:renderer x='1'>kept too</grok:renderer> end <"


def test_default_tags_removed_with_content_and_everything_else_kept():
    assert run([MIXED]) == MIXED_EXPECTED


def test_result_is_independent_of_token_boundaries():
    for cut in range(len(MIXED) + 1):
        assert run([MIXED[:cut], MIXED[cut:]]) == MIXED_EXPECTED, f"split at {cut}"
    assert run(list(MIXED)) == MIXED_EXPECTED


def test_plain_text_is_emitted_immediately_and_only_possible_tags_are_held():
    markup = MarkupFilter()
    assert markup.feed("Hello ") == "Hello "
    assert markup.feed("world <gr") == "world "
    assert markup.feed("oss>") == "<gross>"  # not a configured tag after all
    assert markup.feed("a <") == "a "
    assert markup.feed(" b") == "< b"
    assert markup.feed('x <grok:render card_id="1" type="render_file">') == "x "
    assert markup.feed("still inside") == ""
    assert markup.feed("</grok:render>after") == "after"
    assert markup.finish() == ""


def test_case_insensitive_and_self_closing():
    text = (
        'A<XAIARTIFACT id="1">x</xaiartifact>B<grok:render card_id="z" type="render_file"/>C<Grok:Render/>D'
    )
    assert run([text]) == "ABCD"


def test_same_name_nesting_and_quoted_gt():
    text = '<xaiArtifact title="a>b">outer <xaiArtifact>inner</xaiArtifact> still outer</xaiArtifact>after'
    assert run([text]) == "after"


def test_stray_closing_tags_are_removed():
    assert run(["one</grok:render> two</xaiArtifact>"]) == "one two"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("end <", "end <"),
        ("end <gro", "end <gro"),  # only a prefix: it was text
        ("end </xai", "end </xai"),
        ("end <grok:render card_id=", "end "),  # a started tag is dropped
        ("end <xaiArtifact>never closed", "end "),
    ],
)
def test_unfinished_markup_at_the_end(text, expected):
    assert run([text]) == expected


def test_custom_tag_list_and_no_tags():
    assert run(["<foo>x</foo>y <grok:render/>"], tags=["FOO"]) == "y <grok:render/>"
    assert run(["<grok:render/>z"], tags=[]) == "<grok:render/>z"


def test_elements_reach_the_renderer_with_attributes_and_arguments():
    seen: list[Element] = []

    def render(element: Element, final: bool) -> str:
        seen.append(element)
        return "[R]"

    text = 'x<grok:render card_id="c1" card_type="citation" type="render_inline_citation"><argument name="citation_id"> 7 </argument><argument name="title">T</argument></grok:render>y'
    assert run([text[:20], text[20:]], renderer=render) == "x[R]y"
    (element,) = seen
    assert element.name == "grok:render"
    assert element.attrs == {"card_id": "c1", "card_type": "citation", "type": "render_inline_citation"}
    assert element.arguments == {"citation_id": "7", "title": "T"}


def test_unclosed_element_at_end_is_still_rendered():
    renderer = CardRenderer()
    renderer.add_card(citation_card("c", "https://a.example"))
    text = 'Claim <grok:render card_id="c" type="render_inline_citation"><argument name="x">0'
    assert run([text], renderer=renderer) == "Claim [[1]](https://a.example)"


# --------------------------------------------------------------------------------------------------------------
# CardRenderer
# --------------------------------------------------------------------------------------------------------------


def test_citations_are_numbered_per_unique_url_and_consecutive_duplicates_collapse():
    renderer = CardRenderer()
    renderer.add_card(citation_card("a", "https://a.example"))
    renderer.add_card(citation_card("a2", "https://a.example"))
    renderer.add_card(citation_card("b", "https://b.example"))
    text = f"One{CITE.format(id='a')} {CITE.format(id='a2')}. Two{CITE.format(id='b')}. Again{CITE.format(id='a')}."
    assert run([text], renderer=renderer) == (
        "One[[1]](https://a.example) . Two[[2]](https://b.example). Again[[1]](https://a.example)."
    )
    assert renderer.citations == [Citation(1, "https://a.example"), Citation(2, "https://b.example")]


def test_citation_titles_come_from_cards_or_sources():
    renderer = CardRenderer()
    renderer.add_card(Card("a", "render_inline_citation", {"url": "https://a.example", "title": "From card"}))
    renderer.add_card(citation_card("b", "https://b.example"))
    renderer.add_source(Source("https://b.example", "From search"))
    run([CITE.format(id="a") + "x" + CITE.format(id="b")], renderer=renderer)
    assert [c.title for c in renderer.citations] == ["From card", "From search"]


def test_searched_and_generated_images():
    renderer = CardRenderer()
    image = {
        "title": "A [cat]",
        "thumbnail": "https://t.example/c.jpg",
        "link": "https://p.example/cat",
        "original": "o",
    }
    renderer.add_card(Card("s", "render_searched_image", {"id": "s", "image": image}))
    renderer.add_card(Card("g", "render_generated_image", {"id": "g"}))
    text = (
        '<grok:render card_id="s" card_type="image" type="render_searched_image"></grok:render>'
        '|<grok:render card_id="g" card_type="generated_image_card" type="render_generated_image"></grok:render>'
        '|<grok:render card_id="f" card_type="generated_image_card" type="render_file"></grok:render>|'
    )
    assert run([text], renderer=renderer) == "[![A cat](https://t.example/c.jpg)](https://p.example/cat)|||"


def test_unknown_card_is_dropped_when_streaming():
    renderer = CardRenderer()
    assert run(["a" + CITE.format(id="late") + "b"], renderer=renderer) == "ab"
    assert renderer.citations == []


def test_unknown_card_is_held_until_it_arrives_when_holding():
    renderer = CardRenderer()
    markup = MarkupFilter(render=renderer, hold_unresolved=True)
    assert markup.feed("a" + CITE.format(id="late") + "b") == "a"
    assert markup.holding and markup.feed(" c") == ""
    renderer.add_card(citation_card("late", "https://late.example"))
    assert markup.resume() == "[[1]](https://late.example)b c"
    assert not markup.holding and markup.feed("d") == "d"


def test_held_card_that_never_arrives_is_dropped_at_finish():
    markup = MarkupFilter(render=CardRenderer(), hold_unresolved=True)
    assert markup.feed("a" + CITE.format(id="never") + "b") == "a"
    assert markup.finish() == "b"


def test_insert_places_an_element_at_the_current_position():
    renderer = CardRenderer()
    markup = MarkupFilter(render=renderer)
    renderer.add_card(citation_card("c", "https://c.example"))
    element = Element("grok:render", {"card_id": "c", "type": "render_inline_citation"})
    assert markup.feed("text <") == "text "
    assert markup.insert(element) == "<[[1]](https://c.example)"
    assert markup.insert(element) == ""  # repeated right away: collapsed
