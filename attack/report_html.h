// report_html.h: report.html, the attack report a person opens in a browser:
// report.md rendered by cmark-gfm (GitHub-flavoured CommonMark, with its
// table extension; Debian's libcmark-gfm) with every plot report.md links
// (plots/*.svg) drawn inline, so the one file is the whole report.
#pragma once

#include <functional>
#include <string>

namespace mmia {

// Reads the plot a report links, by its relative path (e.g.
// "plots/cnn_roc.svg"); returns false when it cannot (the report then says
// so in place of the plot).
using PlotReader = std::function<bool(const std::string& path, std::string* svg)>;

// report.html from report.md's text. Each Markdown link to plots/<name>.svg
// becomes a figure with the SVG inline (its XML declaration dropped) and the
// link's text as caption; every other link stays a link. Raw HTML in the
// Markdown is not passed through (cmark's safe default), so text from a run
// (file names, attack names) cannot inject markup. `title` goes into
// <title>. Throws std::runtime_error only if cmark-gfm fails to render.
std::string html_report(const std::string& markdown, const std::string& title, const PlotReader& read_plot);

// A PlotReader for the files under run_dir (paths must stay inside it: a
// link with ".." or an absolute path is refused).
PlotReader plot_reader_in(const std::string& run_dir);

}  // namespace mmia
