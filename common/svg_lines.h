// svg_lines.h: a small SVG line plot, one polyline (and dots) per series over
// shared axes, legend on the right. Used by bin/extract's report (extraction
// rate against prefix length, copies, insertions), its sweep summary
// (attack/extract_sweep.h) and bin/bench_lm (ms per token against context
// length).
#pragma once

#include <string>
#include <vector>

namespace mmia {

struct LineSeries {
    std::string name;
    std::vector<double> x, y;  // same length
    bool dashed = false;       // a dashed line; with points_only, hollow dots
    bool points_only = false;  // dots without the connecting line (a scatter, or categories on x)
    // Optional whiskers, e.g. the range over seeds: empty, or as long as x;
    // a vertical bar with caps from y_lo[i] to y_hi[i] at x[i] (none where
    // they are equal).
    std::vector<double> y_lo = {}, y_hi = {};
    int colour = -1;  // index into the 10-colour palette (mod 10); -1: the series' position
};

// The plot as a whole SVG document (380 px high, 560 px wide or wider when
// a legend label needs the room; the plot area stays x 60..390 px), each
// legend entry with a swatch of its series' style. x is drawn on a log2 axis
// when logx (then every x must be > 0), where every distinct x gets a tick
// label; a linear x axis has a 5% margin each side and ticks at five even
// steps over the data (%.3g), or with xnames a half-category margin and the
// categories' names.
// Text is written as given (no XML escaping: pass plain labels). xnames:
// categories on x; an x value i in [0, xnames.size()) is labelled xnames[i].
// The y axis runs from y_from (lowered to the smallest y or whisker end below
// it; 0.5 suits AUCs) to 1.05 times the largest.
std::string svg_lines(const std::vector<LineSeries>& series, const std::string& title, const std::string& xlabel,
                      const std::string& ylabel, bool logx, const std::vector<std::string>& xnames = {},
                      double y_from = 0);

}  // namespace mmia
