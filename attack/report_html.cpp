// report_html.cpp: report.md -> report.html (cmark-gfm, plots inline).
#include "attack/report_html.h"

#include <cmark-gfm-core-extensions.h>
#include <cmark-gfm.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace mmia {

namespace {

// Markdown -> HTML with GitHub's table extension; raw HTML omitted.
std::string render_markdown(const std::string& markdown) {
    cmark_gfm_core_extensions_ensure_registered();
    cmark_parser* parser = cmark_parser_new(CMARK_OPT_DEFAULT);
    if (cmark_syntax_extension* table = cmark_find_syntax_extension("table"))
        cmark_parser_attach_syntax_extension(parser, table);
    cmark_parser_feed(parser, markdown.data(), markdown.size());
    cmark_node* doc = cmark_parser_finish(parser);
    char* html = doc ? cmark_render_html(doc, CMARK_OPT_DEFAULT, cmark_parser_get_syntax_extensions(parser)) : nullptr;
    std::string out = html ? html : "";
    free(html);
    if (doc) cmark_node_free(doc);
    cmark_parser_free(parser);
    if (!html) throw std::runtime_error("report.html: cmark-gfm could not render report.md");
    return out;
}

std::string escape_html(const std::string& s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            default: out += c;
        }
    }
    return out;
}

// The SVG document without an XML declaration (not allowed inside HTML).
std::string inline_svg(std::string svg) {
    if (svg.compare(0, 5, "<?xml") == 0) {
        size_t end = svg.find("?>");
        svg = end == std::string::npos ? "" : svg.substr(end + 2);
    }
    return svg;
}

// Replaces each rendered <a href="plots/...svg">caption</a> by a figure.
std::string inline_plots(const std::string& html, const PlotReader& read_plot) {
    static const std::string open = "<a href=\"plots/";
    std::string out;
    size_t pos = 0;
    while (true) {
        size_t a = html.find(open, pos);
        if (a == std::string::npos) break;
        size_t href_end = html.find('"', a + 9);
        size_t text_start = href_end == std::string::npos ? href_end : html.find('>', href_end);
        size_t close = text_start == std::string::npos ? text_start : html.find("</a>", text_start);
        if (close == std::string::npos) break;
        const std::string path = html.substr(a + 9, href_end - (a + 9));  // "plots/x.svg" (escaped by cmark)
        const std::string caption = html.substr(text_start + 1, close - text_start - 1);
        out.append(html, pos, a - pos);
        std::string svg;
        const bool is_svg = path.size() > 4 && path.compare(path.size() - 4, 4, ".svg") == 0;
        if (is_svg && path.find('&') == std::string::npos && read_plot(path, &svg)) {
            out += "<figure class=\"plot\">" + inline_svg(svg) + "<figcaption>" + caption + " (" + path +
                   ")</figcaption></figure>";
        } else {
            out += "<span class=\"missing\">" + caption + ": " + path + " could not be read</span>";
        }
        pos = close + 4;
        // report.md lists a kind's plots as "[a](..), [b](..)": between figures the comma is litter.
        if (html.compare(pos, 2, ", ") == 0 && html.compare(pos + 2, open.size(), open) == 0) pos += 2;
    }
    out.append(html, pos, std::string::npos);
    return out;
}

const char* kStyle =
    "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:0.85em;margin:1em 0;display:block;overflow-x:auto;max-width:100%}"
    "th,td{border:1px solid #bbb;padding:0.25em 0.5em;text-align:right;white-space:nowrap}"
    "th:first-child,td:first-child{text-align:left}"
    "thead{background:#eee}"
    "figure.plot{display:inline-block;margin:0.5em}"
    "figcaption{font-size:0.85em;color:#555}"
    ".missing{color:#a00}";

}  // namespace

std::string html_report(const std::string& markdown, const std::string& title, const PlotReader& read_plot) {
    std::ostringstream o;
    o << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>" << escape_html(title)
      << "</title>\n<style>" << kStyle << "</style>\n</head>\n<body>\n"
      << inline_plots(render_markdown(markdown), read_plot) << "</body>\n</html>\n";
    return o.str();
}

PlotReader plot_reader_in(const std::string& run_dir) {
    return [run_dir](const std::string& path, std::string* svg) {
        if (path.empty() || path[0] == '/' || path.find("..") != std::string::npos) return false;
        std::ifstream f(run_dir + "/" + path, std::ios::binary);
        if (!f) return false;
        std::ostringstream s;
        s << f.rdbuf();
        *svg = s.str();
        return bool(f) || f.eof();
    };
}

}  // namespace mmia
