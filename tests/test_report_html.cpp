// report.html: report.md rendered by cmark-gfm with the plots inline
// (attack/report_html.h), checked as text and opened in headless Chromium
// (Debian's chromium-headless-shell, installed by `make setup`): no console
// error, every plot drawn, a screenshot taken.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "attack/report.h"
#include "attack/report_html.h"
#include "tests/cli_check.h"
#include "tests/temp_dir.h"

using namespace mmia;

namespace {

size_t count(const std::string& s, const std::string& needle) {
    size_t n = 0;
    for (size_t p = s.find(needle); p != std::string::npos; p = s.find(needle, p + needle.size())) n++;
    return n;
}

PlotReader map_reader(const std::map<std::string, std::string>& files) {
    return [files](const std::string& path, std::string* svg) {
        auto it = files.find(path);
        if (it == files.end()) return false;
        *svg = it->second;
        return true;
    };
}

// A committed report of a real run (MNIST, shokri protocol, docs/results/).
const std::string kRunDir = "docs/results/mnist-shokri-ds2500-s10-t3-seed42";

// The plots the committed run predates, drawn by today's code into
// dir/plots from made-up data with the longest labels a run can have; the
// Markdown links to them (appended to the committed report).
std::string write_newer_plots(const std::string& dir) {
    std::vector<RocPoint> roc = {{INFINITY, 0, 0}, {2, 1e-3, 0.05}, {1, 0.01, 0.2}, {0, 1, 1}};
    auto curves = [&](std::vector<std::string> names) {
        std::vector<NamedRoc> c;
        for (const auto& n : names) c.push_back({n, roc});
        return c;
    };
    const std::vector<std::pair<std::string, std::vector<NamedRoc>>> kinds = {
        {"cnn", curves({"modified_entropy_per_class", "lira_online_fixed_var_aug", "loss", "lira_online"})},
        {"mamba", curves({"label_only_augment", "rmia_online", "seed000_mlp", "lira_online"})}};
    std::vector<float> logits;
    std::vector<int> labels, member;
    for (int i = 0; i < 200; i++) {
        for (int c = 0; c < 10; c++) logits.push_back(c == i % 10 ? float(i % 37) - 5.0f : 0.0f);
        labels.push_back(i % 10);
        member.push_back(i % 2);
    }
    nlohmann::json per_epoch = nlohmann::json::array();
    for (int e = 1; e <= 24; e++)
        per_epoch.push_back({{"epoch", e}, {"loss_auc", 0.5 + 0.01 * e}, {"gap", 0.008 * e}});
    const nlohmann::json result = {{"models", {{"cnn", {{"per_epoch", per_epoch}}}, {"mamba", {{"per_epoch", per_epoch}}}}}};
    std::filesystem::create_directories(dir + "/plots");
    std::ofstream(dir + "/plots/roc_loglog_both.svg") << svg_roc_kinds(kinds, "both kinds, log-log");
    std::ofstream(dir + "/plots/cnn_hist_logit_conf.svg")
        << svg_histogram(logit_confidence_histogram(logits, 10, labels, member, 40), "logit-scaled confidence",
                         "phi = log(p_y / (1 - p_y)) (higher = member)");
    std::ofstream(dir + "/plots/vulnerability_per_epoch.svg") << svg_vulnerability_per_epoch(result, "per epoch");
    return "\n## Newer plots\n\n- [Both kinds](plots/roc_loglog_both.svg), [logit-scaled](plots/cnn_hist_logit_conf.svg), "
           "[per epoch](plots/vulnerability_per_epoch.svg)\n";
}

// Runs in the page Chromium loads: the path of every inline plot with a
// text element reaching past the SVG's right edge, as rendered (getBBox),
// into <pre id="clipped">.
const char* kClipScript =
    "<script>var out=[];document.querySelectorAll('figure.plot').forEach(function(f){var s=f.querySelector('svg');"
    "var w=s.width.baseVal.value;s.querySelectorAll('text').forEach(function(t){var b=t.getBBox();"
    "if(b.x+b.width>w+0.5)out.push(f.querySelector('figcaption').textContent+': '+t.textContent);});});"
    "document.body.insertAdjacentHTML('beforeend','<pre id=\"clipped\">['+out.join('|')+']</pre>');</script>";

}  // namespace

TEST_CASE("html_report: headings, GitHub tables, plots inline, other links kept, raw HTML not passed") {
    const std::string md =
        "# Title & more\n\nText with <script>alert(1)</script> inline.\n\n"
        "| attack | AUC |\n| --- | --- |\n| loss | 0.55 |\n\n"
        "- cnn: [ROC](plots/a.svg), [missing](plots/none.svg)\n- all numbers: [metrics](metrics.json)\n";
    const std::string svg = "<?xml version=\"1.0\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><polyline points=\"0,0 1,1\"/></svg>";
    const std::string html = html_report(md, "a <run>", map_reader({{"plots/a.svg", svg}}));
    CHECK(html.find("<title>a &lt;run&gt;</title>") != std::string::npos);
    CHECK(html.find("<h1>Title &amp; more</h1>") != std::string::npos);
    CHECK(html.find("<th>attack</th>") != std::string::npos);
    CHECK(html.find("<td>0.55</td>") != std::string::npos);
    // The plot is inline, without its XML declaration, captioned.
    CHECK(count(html, "<svg") == 1);
    CHECK(html.find("<?xml") == std::string::npos);
    CHECK(html.find("<figcaption>ROC (plots/a.svg)</figcaption>") != std::string::npos);
    CHECK(html.find("href=\"plots/a.svg\"") == std::string::npos);
    // An unreadable plot is said, in place.
    CHECK(html.find("missing: plots/none.svg could not be read") != std::string::npos);
    // The ", " between two plot links is dropped (it would litter the space between figures).
    CHECK(html.find("</figure><span class=\"missing\">") != std::string::npos);
    // Other links stay links; raw HTML from the text never reaches the page.
    CHECK(html.find("<a href=\"metrics.json\">metrics</a>") != std::string::npos);
    CHECK(html.find("<script>") == std::string::npos);
}

TEST_CASE("plot_reader_in reads inside the run directory only") {
    std::string svg;
    PlotReader r = plot_reader_in(kRunDir);
    CHECK(r("plots/cnn_roc.svg", &svg));
    CHECK(svg.find("<svg") != std::string::npos);
    CHECK_FALSE(r("../mnist-shokri-ds2500-s10-t3-seed42/plots/cnn_roc.svg", &svg));
    CHECK_FALSE(r("/etc/passwd", &svg));
    CHECK_FALSE(r("plots/none.svg", &svg));
}

TEST_CASE("report.html of a real run opens in headless Chromium: no console error, every plot drawn") {
    const std::string chromium = cli_env_or("CHROMIUM_BIN", "/usr/bin/chromium-headless-shell");
    std::ifstream mdf(kRunDir + "/report.md");
    REQUIRE(mdf);
    std::string md((std::istreambuf_iterator<char>(mdf)), std::istreambuf_iterator<char>());
    TempDir t("mmia_html");
    md += write_newer_plots(t.path.string());
    const size_t plots = count(md, "](plots/");
    REQUIRE(plots == 9);
    const std::string page = t.file("report.html");
    const PlotReader committed = plot_reader_in(kRunDir), newer = plot_reader_in(t.path.string());
    std::string html = html_report(md, "mnist shokri", [&](const std::string& path, std::string* svg) {
        return newer(path, svg) || committed(path, svg);
    });
    html.insert(html.rfind("</body>"), kClipScript);
    std::ofstream(page, std::ios::binary) << html;
    if (!cli_file_exists(chromium)) {
        cli_skip(chromium + " is not installed (make setup installs chromium-headless-shell)");
        return;
    }
    const std::vector<std::string> common = {chromium, "--no-sandbox", "--disable-gpu", "--user-data-dir=" + t.file("profile"),
                                             "--enable-logging=stderr", "--v=0"};
    std::vector<std::string> dump = common;
    dump.push_back("--dump-dom");
    dump.push_back("file://" + page);
    CliRun r = cli_run_argv(dump, t.file("dom"), 60);
    REQUIRE(r.code == 0);
    INFO("chromium stderr: " << r.err);
    // Console messages (errors, failed loads, uncaught exceptions) are logged
    // as ":CONSOLE" lines; a page that loads cleanly logs none.
    CHECK(r.err.find(":CONSOLE") == std::string::npos);
    // The DOM Chromium built has every plot as an SVG element with its curves
    // (parsed as SVG, not as text), and the tables.
    CHECK(count(r.out, "<svg") == plots);
    CHECK(count(r.out, "<polyline") >= plots);
    CHECK(count(r.out, "<table>") == 2);
    CHECK(r.out.find("could not be read") == std::string::npos);
    // Legends not clipped, as Chromium lays the text out: none of the
    // newer plots has a text past its right edge (the committed run's
    // per-kind ROC plots, drawn 640 wide before legend_width, may).
    const size_t at = r.out.rfind("<pre id=\"clipped\">[");  // the element the script added, after the script
    REQUIRE(at != std::string::npos);
    REQUIRE(r.out.compare(at, 40, "<pre id=\"clipped\">['+out.join('|')+']</pre>") != 0);  // it ran
    const std::string clipped = r.out.substr(at, r.out.find("]</pre>", at) - at);
    MESSAGE("clipped texts: " << clipped);
    for (const char* p : {"roc_loglog_both", "hist_logit_conf", "vulnerability_per_epoch"})
        CHECK_MESSAGE(clipped.find(p) == std::string::npos, p);
    // A screenshot is taken: a PNG of the window's size.
    std::vector<std::string> shot = common;
    shot.push_back("--window-size=1280,2400");
    shot.push_back("--screenshot=" + t.file("shot.png"));
    shot.push_back("file://" + page);
    CHECK(cli_run_argv(shot, t.file("shot"), 60).code == 0);
    const std::string png = cli_read_text(t.file("shot.png"));
    REQUIRE(png.size() > 24);
    CHECK(png.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0);
    auto be32 = [&](size_t at) {
        return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
               (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
    };
    CHECK(be32(16) == 1280);  // IHDR width
    CHECK(be32(20) == 2400);  // IHDR height
    CHECK(png.size() > 50000);  // plots and tables drawn, not a blank page
}
