from queries.wikitext import strip_wikitext


def test_templates_refs_comments_and_tables_are_removed():
    text = ("{{Infobox shape|name=Circle|image={{nested|x}}}}'''Circle''' is round.<ref name=\"a\">{{cite web|"
            "url=http://x.org|title=Hidden}}</ref><ref name=\"a\" /> <!-- secret note -->\n"
            "{| class=\"wikitable\"\n|-\n| hidden cell || {{another}}\n|}\nAfter the table.")
    assert strip_wikitext(text) == "Circle is round. \nAfter the table."


def test_links_keep_their_text_and_drop_files_categories_and_languages():
    text = ("A [[Circle (geometry)|circle]] and [[square]]s. [[File:Red.svg|thumb|A [[red]] caption]]"
            "[[Image:X.png|left]] [[Category:Shapes]] [[de:Kreis]] [[:Category:Shapes|the category]] "
            "[[Mercury (planet)|]] [[Star Wars: Episode IV]]")
    assert strip_wikitext(text).split() == ["A", "circle", "and", "squares.", "the", "category", "Mercury",
                                            "Star", "Wars:", "Episode", "IV"]


def test_external_links_urls_headings_lists_quotes_tags_and_entities():
    text = ("== History ==\n* '''Bold''' and ''italic'' item\n# numbered\n: indented "
            "[https://example.org the site] http://bare.example/x<br/>next&nbsp;word &amp; &lt;ref&gt;\n"
            "<math>x^2</math><span style=\"c\">kept</span>\n----\n__NOTOC__")
    assert strip_wikitext(text) == ("History\nBold and italic item\nnumbered\nindented the site \nnext\xa0word & "
                                    "<ref>\nkept")


def test_unclosed_template_does_not_swallow_the_page():
    assert strip_wikitext("Before {{broken template and after text") == "Before {{broken template and after text"
    assert strip_wikitext("stray }} closer stays") == "stray }} closer stays"


def test_links_in_the_given_namespaces_are_dropped_whatever_their_case_or_underscores():
    german = frozenset({"file", "image", "media", "category", "datei", "bild", "kategorie", "tập tin"})
    text = ("Eine [[Katze]]. [[Datei:Foo.jpg|mini|Ein Bild]] [[KATEGORIE:Tiere]] [[bild:X.png|links]] "
            "[[Tập_tin:Y.jpg|nhỏ]] [[:Kategorie:Tiere|alle Tiere]] [[Vorlage:Z|zeta]]")
    assert strip_wikitext(text, german).split() == ["Eine", "Katze.", "alle", "Tiere", "zeta"]
    # Without them only the canonical names go: a German file link shows its caption.
    assert "Bild" in strip_wikitext(text).split()
