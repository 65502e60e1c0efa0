// svg_lines.cpp: a small SVG line plot (see svg_lines.h). Plain C++, no
// dependencies, so the benchmarks that link no LibTorch can draw too.
#include "common/svg_lines.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <sstream>

namespace mmia {

namespace {

// A data dot: filled, or hollow for a dashed points-only series.
void dot(std::ostringstream& o, const LineSeries& s, const char* col, double cx, double cy) {
    o << "<circle cx=\"" << cx << "\" cy=\"" << cy << "\" r=\"3\" ";
    if (s.points_only && s.dashed) o << "fill=\"white\" stroke=\"" << col << "\" stroke-width=\"1.5\"/>\n";
    else o << "fill=\"" << col << "\"/>\n";
}

// One legend entry at baseline y, right of the plot area (which ends at x
// px): a swatch of the series' style (a dot, filled or hollow, a line, a
// dashed line), then its name in its colour.
void legend_entry(std::ostringstream& o, const LineSeries& s, const char* col, double x, double ly) {
    if (s.points_only)
        dot(o, s, col, x + 22, ly - 4);
    else
        o << "<line x1=\"" << x + 10 << "\" y1=\"" << ly - 4 << "\" x2=\"" << x + 34 << "\" y2=\"" << ly - 4
          << "\" stroke=\"" << col << "\" stroke-width=\"2\"" << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << "/>\n";
    o << "<text x=\"" << x + 40 << "\" y=\"" << ly << "\" fill=\"" << col << "\">" << s.name << "</text>\n";
}

}  // namespace

std::string svg_lines(const std::vector<LineSeries>& series, const std::string& title, const std::string& xlabel,
                      const std::string& ylabel, bool logx, const std::vector<std::string>& xnames,
                      double y_from) {
    // The plot area is x 60..390 px; the legend to its right, as wide as its
    // longest label needs (about 7 px per character), the SVG at least 560 px.
    size_t longest = 0;
    for (const auto& s : series) longest = std::max(longest, s.name.size());
    const double H = 380, L = 60, T = 30, B = 50, PR = 390;
    const double W = std::max(560.0, PR + 40 + 7.0 * double(longest) + 10), R = W - PR;
    double x0 = 1e300, x1 = -1e300, y0 = y_from, y1 = -1e300;
    for (const auto& s : series)
        for (size_t i = 0; i < s.x.size(); i++) {
            double x = logx ? std::log2(s.x[i]) : s.x[i];
            x0 = std::min(x0, x);
            x1 = std::max(x1, x);
            const bool w = i < s.y_lo.size() && i < s.y_hi.size();
            y0 = std::min(y0, w ? std::min(s.y[i], s.y_lo[i]) : s.y[i]);
            y1 = std::max(y1, w ? std::max(s.y[i], s.y_hi[i]) : s.y[i]);
        }
    if (!(y1 > y0)) y1 = y0 + 1e-12;
    if (!(x1 > x0)) {
        x0 -= 1;
        x1 += 1;
    }
    // A linear axis: ticks at five even steps over the data (or at the
    // categories), and a margin so no dot sits on an axis.
    const double data_x0 = x0, data_x1 = x1;
    if (!logx) {
        const double pad = xnames.empty() ? 0.05 * (x1 - x0) : 0.5;
        x0 -= pad;
        x1 += pad;
    }
    y1 = y0 + 1.05 * (y1 - y0);
    auto X = [&](double x) { return L + ((logx ? std::log2(x) : x) - x0) / (x1 - x0) * (W - L - R); };
    auto Y = [&](double y) { return H - B - (y - y0) / (y1 - y0) * (H - T - B); };
    // matplotlib's tab10, blue and red first
    const char* colours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
                             "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
    std::ostringstream o;
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    o << "<text x=\"" << W / 2 << "\" y=\"18\" text-anchor=\"middle\">" << title << "</text>\n";
    o << "<line x1=\"" << L << "\" y1=\"" << H - B << "\" x2=\"" << W - R << "\" y2=\"" << H - B
      << "\" stroke=\"black\"/>\n<line x1=\"" << L << "\" y1=\"" << T << "\" x2=\"" << L << "\" y2=\"" << H - B
      << "\" stroke=\"black\"/>\n";
    std::set<double> xs;
    if (!logx && xnames.empty())
        for (int i = 0; i <= 4; i++) xs.insert(data_x0 + (data_x1 - data_x0) * i / 4);
    else
        for (const auto& s : series) xs.insert(s.x.begin(), s.x.end());
    for (double x : xs) {
        o << "<text x=\"" << X(x) << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">";
        const bool named = x >= 0 && x < double(xnames.size()) && x == std::floor(x);
        char b[32];
        std::snprintf(b, sizeof b, "%.3g", x);
        if (named)
            o << xnames[size_t(x)];
        else if (!logx)
            o << b;
        else
            o << x;
        o << "</text>\n";
    }
    for (int i = 0; i <= 4; i++) {
        double y = y0 + (y1 - y0) * i / 4;
        char b[32];
        std::snprintf(b, sizeof b, "%.3g", y);
        o << "<text x=\"" << L - 5 << "\" y=\"" << Y(y) + 4 << "\" text-anchor=\"end\">" << b << "</text>\n";
    }
    o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 10 << "\" text-anchor=\"middle\">" << xlabel
      << "</text>\n<text x=\"15\" y=\"" << (T + H - B) / 2 << "\" transform=\"rotate(-90 15 " << (T + H - B) / 2
      << ")\" text-anchor=\"middle\">" << ylabel << "</text>\n";
    for (size_t si = 0; si < series.size(); si++) {
        const auto& s = series[si];
        const char* col = colours[size_t(s.colour >= 0 ? s.colour : int(si)) % 10];
        if (!s.points_only) {
            o << "<polyline fill=\"none\" stroke=\"" << col << "\" stroke-width=\"2\""
              << (s.dashed ? " stroke-dasharray=\"6,4\"" : "") << " points=\"";
            for (size_t i = 0; i < s.x.size(); i++) o << X(s.x[i]) << ',' << Y(s.y[i]) << ' ';
            o << "\"/>\n";
        }
        for (size_t i = 0; i < s.x.size(); i++) dot(o, s, col, X(s.x[i]), Y(s.y[i]));
        for (size_t i = 0; i < s.x.size() && i < s.y_lo.size() && i < s.y_hi.size(); i++) {
            if (s.y_lo[i] == s.y_hi[i]) continue;  // no spread (e.g. one seed): no whisker
            const double cx = X(s.x[i]), lo = Y(s.y_lo[i]), hi = Y(s.y_hi[i]);
            o << "<path class=\"whisker\" d=\"M" << cx << ',' << lo << " V" << hi << " M" << cx - 4 << ',' << lo
              << " h8 M" << cx - 4 << ',' << hi << " h8\" stroke=\"" << col << "\" fill=\"none\"/>\n";
        }
        legend_entry(o, s, col, PR, T + 16 * (si + 1));
    }
    o << "</svg>\n";
    return o.str();
}

}  // namespace mmia
