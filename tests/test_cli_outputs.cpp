// test_cli_outputs.cpp: every program's outputs and integer flags, through
// the programs a user runs (issue 16's last kinds; docs/BAD_INPUT.md,
// "Outputs, run directories and integer flags"):
//   - an output that is one of the inputs (the same path, a symlink, a hard
//     link, another spelling) is refused before any work, the input intact;
//   - a failing command leaves every output as it was (nothing written, no
//     temporary file), and a refused run directory holds nothing;
//   - an integer flag out of range is one usage line with its human bound;
//   - the dataset asked for and the files found must agree;
//   - a null-member run says so on stdout.
// No LibTorch here: the programs do the work, so this builds in seconds.
// Most cases are refusals before any work (well under a second each); one
// bin/attack run trains two tiny CNNs (a few seconds).
#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tests/cli_check.h"
#include "tests/temp_dir.h"

namespace {

const std::string kMamba = cli_env_or("MAMBA_BIN", "./mamba");
const std::string kCnn = cli_env_or("CNN_BIN", "./cnn");
const std::string kTransformer = cli_env_or("TRANSFORMER_BIN", "./transformer");
const std::string kTrain = cli_env_or("TRAIN_BIN", "bin/train");
const std::string kExport = cli_env_or("EXPORT_BIN", "bin/export");
const std::string kAttack = cli_env_or("ATTACK_BIN", "bin/attack");
const std::string kExtract = cli_env_or("EXTRACT_BIN", "bin/extract");
const std::string kCorpus = cli_env_or("CORPUS_BIN", "bin/corpus");

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    f << text;
}

// Runs bin with args (no shell), under a 120 s limit; the result.
CliRun run(const std::string& bin, std::vector<std::string> args, const std::string& dir) {
    static int n = 0;
    REQUIRE_MESSAGE(access(bin.c_str(), X_OK) == 0, "no executable " << bin << " (run from the repo root after make)");
    args.insert(args.begin(), bin);
    return cli_run_argv(args, dir + "/log" + std::to_string(n++));
}

// A refusal: exit code, exactly `line` on stderr, nothing on stdout.
void check_refused(const CliRun& r, int code, const std::string& line) {
    INFO("stderr: " << r.err << "stdout: " << r.out);
    CHECK(r.code == code);
    CHECK(r.err == line + "\n");
    CHECK(r.out.empty());
}

std::string same_file_line(const std::string& out, const std::string& flag, const std::string& in) {
    return "error: " + out + ": " + flag + " is the same file as the input " + in + " (it would be overwritten)";
}

// No file in dir whose name contains ".tmp".
void check_no_temp_files(const std::string& dir) {
    const std::string cmd = "ls -a " + cli_quote(dir) + " | grep -q '\\.tmp'";
    CHECK_MESSAGE(system(cmd.c_str()) != 0, "a temporary file was left in " << dir);
}

// A directory with the four MNIST file names holding junk: enough for the
// checks that run before any file is read.
std::string junk_idx_dir(const TempDir& t) {
    const std::string d = t.file("ds");
    mkdir(d.c_str(), 0755);
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                          "t10k-labels-idx1-ubyte"})
        write_text(d + "/" + f, "junk");
    return d;
}

}  // namespace

TEST_CASE("an output that is one of the inputs is refused before any work, the input intact (every program)") {
    TempDir t("mmia_outputs");
    const std::string model = t.file("m.bin"), input = t.file("in.bin"), link = t.file("link.bin"),
                      hard = t.file("hard.bin"), texts = t.file("t.txt");
    write_text(model, "model bytes");
    write_text(input, "input bytes");
    write_text(texts, "ab\n");
    REQUIRE(symlink(input.c_str(), link.c_str()) == 0);
    REQUIRE(::link(input.c_str(), hard.c_str()) == 0);
    mkdir(t.file("sub").c_str(), 0755);
    const std::string other_spelling = t.file("sub/../in.bin");

    SUBCASE("./mamba and ./cnn: --out the input, a symlink or hard link to it, another spelling, the model") {
        for (const std::string& bin : {kMamba, kCnn}) {
            CAPTURE(bin);
            for (const std::string& out : {input, link, hard, other_spelling})
                check_refused(run(bin, {model, input, "--out", out}, t.path), 1, same_file_line(out, "--out", input));
            check_refused(run(bin, {model, input, "--out", model}, t.path), 1, same_file_line(model, "--out", model));
        }
    }
    SUBCASE("./transformer and ./mamba --score: --out the texts or the model") {
        for (const std::string& bin : {kTransformer, kMamba}) {
            CAPTURE(bin);
            check_refused(run(bin, {model, "--score", texts, "--out", texts}, t.path), 1,
                          same_file_line(texts, "--out", texts));
            check_refused(run(bin, {model, "--score", texts, "--out", model}, t.path), 1,
                          same_file_line(model, "--out", model));
        }
    }
    SUBCASE("bin/export model: --output the checkpoint, or a link to it") {
        for (const std::string& out : {input, link, hard})
            check_refused(run(kExport, {"model", "--checkpoint", input, "--output", out}, t.path), 1,
                          same_file_line(out, "--output", input));
    }
    SUBCASE("bin/export image: --output or --labels a dataset file, or --labels the --output") {
        const std::string ds = junk_idx_dir(t);
        const std::string labels = ds + "/train-labels-idx1-ubyte", images = ds + "/t10k-images-idx3-ubyte";
        check_refused(run(kExport, {"image", "--data-dir", ds, "--output", images}, t.path), 1,
                      same_file_line(images, "--output", images));
        check_refused(run(kExport, {"image", "--data-dir", ds, "--output", t.file("o.bin"), "--labels", labels}, t.path),
                      1, same_file_line(labels, "--labels", labels));
        check_refused(run(kExport, {"image", "--data-dir", ds, "--output", t.file("o.bin"), "--labels", t.file("o.bin")},
                          t.path),
                      1, "error: " + t.file("o.bin") + ": --labels is the same file as --output (give each its own file)");
        CHECK(!cli_file_exists(t.file("o.bin")));
    }
    SUBCASE("bin/train: --output the config or a dataset file; a language model's --output a corpus file") {
        const std::string ds = junk_idx_dir(t), cfg = t.file("config.json");
        write_text(cfg, cli_read_text("config.json"));
        const std::string before = cli_read_text(cfg);
        check_refused(run(kTrain, {"--config", cfg, "--data-dir", ds, "--output", cfg}, t.path), 1,
                      same_file_line(cfg, "--output", cfg));
        CHECK(cli_read_text(cfg) == before);
        const std::string labels = ds + "/t10k-labels-idx1-ubyte";
        check_refused(run(kTrain, {"--config", cfg, "--data-dir", ds, "--output", labels}, t.path), 1,
                      same_file_line(labels, "--output", labels));
        CHECK(cli_read_text(labels) == "junk");
        const std::string corpus = t.file("corpus");
        mkdir(corpus.c_str(), 0755);
        write_text(corpus + "/documents.jsonl", "docs");
        check_refused(run(kTrain, {"--model", "mamba-lm", "--corpus", corpus, "--config", cfg, "--output",
                                   corpus + "/documents.jsonl"},
                          t.path),
                      1, same_file_line(corpus + "/documents.jsonl", "--output", corpus + "/documents.jsonl"));
        CHECK(cli_read_text(corpus + "/documents.jsonl") == "docs");
    }
    SUBCASE("bin/attack and bin/extract: --config (or --corpus, --data-dir) inside --run-dir") {
        const std::string rd = t.file("run"), cfg = rd + "/config.json";
        mkdir(rd.c_str(), 0755);
        write_text(cfg, "{}");
        const std::string inside = "error: " + cfg + ": --config lies inside the run directory " + rd +
                                   " (a run writes and replaces files there; keep its inputs outside --run-dir)";
        check_refused(run(kAttack, {"--config", cfg, "--run-dir", rd}, t.path), 1, inside);
        check_refused(run(kExtract, {"--config", cfg, "--run-dir", rd}, t.path), 1, inside);
        mkdir((rd + "/data").c_str(), 0755);
        check_refused(run(kAttack, {"--data-dir", rd + "/data", "--run-dir", rd}, t.path), 1,
                      "error: " + rd + "/data: --data-dir lies inside the run directory " + rd +
                          " (a run writes and replaces files there; keep its inputs outside --run-dir)");
        mkdir((rd + "/corpus").c_str(), 0755);
        check_refused(run(kExtract, {"--corpus", rd + "/corpus", "--run-dir", rd}, t.path), 1,
                      "error: " + rd + "/corpus: --corpus lies inside the run directory " + rd +
                          " (a run writes and replaces files there; keep its inputs outside --run-dir)");
        CHECK(cli_read_text(cfg) == "{}");
    }
    CHECK(cli_read_text(input) == "input bytes");
    CHECK(cli_read_text(model) == "model bytes");
    CHECK(cli_read_text(texts) == "ab\n");
    check_no_temp_files(t.path);
}

TEST_CASE("a failing bin/export image leaves every output as it was, and --index past the split is one line") {
    TempDir t("mmia_outputs");
    const std::string out = t.file("out.bin"), labels = t.file("labels.txt");
    write_text(out, "old images");
    write_text(labels, "old labels");
    // --labels a directory: refused before anything is written (it used to
    // replace --output first, then fail).
    mkdir(t.file("adir").c_str(), 0755);
    check_refused(run(kExport, {"image", "--data-dir", "data/mnist", "--output", out, "--labels", t.file("adir")},
                      t.path),
                  1, "error: " + t.file("adir") + ": not a regular file");
    CHECK(cli_read_text(out) == "old images");
    // --labels in a directory that does not exist: found only when its
    // temporary file cannot be created, after --output's was written; both
    // temporaries go, neither file is replaced. The line names the
    // temporary, <labels>.tmp.<pid>.
    {
        const std::string bad = t.file("nodir/l.txt");
        CliRun r = run(kExport, {"image", "--data-dir", "data/mnist", "--output", out, "--labels", bad}, t.path);
        INFO("stderr: " << r.err);
        CHECK(r.code == 1);
        CHECK(r.out.empty());
        const std::string head = "error: " + bad + ": cannot create " + bad + ".tmp.",
                          tail = ": No such file or directory\n";
        REQUIRE(r.err.size() > head.size() + tail.size());
        CHECK(r.err.compare(0, head.size(), head) == 0);
        CHECK(r.err.compare(r.err.size() - tail.size(), tail.size(), tail) == 0);
        const std::string pid = r.err.substr(head.size(), r.err.size() - head.size() - tail.size());
        CHECK(pid.find_first_not_of("0123456789") == std::string::npos);
        CHECK(cli_read_text(out) == "old images");
    }
    // docs/BAD_INPUT.md: --index past the end of the split.
    check_refused(run(kExport, {"image", "--data-dir", "data/mnist", "--index", "99999", "--output", out, "--labels",
                                labels},
                      t.path),
                  1, "error: images [99999, 100000) are outside the 10000 images of this split");
    check_refused(run(kExport, {"image", "--data-dir", "data/mnist", "--index", "99999", "--count", "0", "--output",
                                out},
                      t.path),
                  1, "error: images [99999, 100000) are outside the 10000 images of this split");
    CHECK(cli_read_text(out) == "old images");
    CHECK(cli_read_text(labels) == "old labels");
    check_no_temp_files(t.path);
    // The same command with good paths writes both, consistently: image i's
    // label is line i (checked against the IDX label file itself).
    CliRun ok = run(kExport, {"image", "--data-dir", "data/mnist", "--index", "3", "--count", "2", "--output", out,
                              "--labels", labels},
                    t.path);
    INFO("stderr: " << ok.err);
    REQUIRE(ok.code == 0);
    CHECK(std::ifstream(out, std::ios::ate | std::ios::binary).tellg() == 2 * 784 * 4);
    const std::string idx = cli_read_text("data/mnist/t10k-labels-idx1-ubyte");
    REQUIRE(idx.size() == 10008);
    CHECK(cli_read_text(labels) == std::to_string(int(uint8_t(idx[8 + 3]))) + "\n" +
                                       std::to_string(int(uint8_t(idx[8 + 4]))) + "\n");
    check_no_temp_files(t.path);
}

TEST_CASE("a flag given twice is one usage line (bin/export, the other programs, the engines)") {
    TempDir t("mmia_outputs");
    check_refused(run(kExport, {"image", "--index", "1", "--index", "2", "--output", t.file("o.bin")}, t.path), 2,
                  "error: --index: At Most 1 required but received 2 (see --help)");
    check_refused(run(kAttack, {"--seed", "1", "--seed", "2"}, t.path), 2,
                  "error: --seed: At Most 1 required but received 2 (see --help)");
    CHECK(!cli_file_exists(t.file("o.bin")));
    // The engines: a value flag twice is never "the last one wins".
    const std::string m = t.file("m.bin"), in = t.file("in.bin");
    write_text(m, "m");
    write_text(in, "i");
    check_refused(run(kMamba, {m, in, "--out", t.file("a.npy"), "--out", t.file("b.npy")}, t.path), 2,
                  "error: --out: given twice (give it once) (see ./mamba --help)");
    check_refused(run(kCnn, {m, in, "--threads", "1", "--threads", "2"}, t.path), 2,
                  "error: --threads: given twice (give it once) (see ./cnn --help)");
    check_refused(run(kTransformer, {m, "-i", "ab", "-n", "1", "-n", "2"}, t.path), 2,
                  "error: -n: given twice (give it once) (see ./transformer lm.bin --help)");
    check_refused(run(kMamba, {m, "-i", "ab", "-s", "1", "-i", "cd"}, t.path), 2,
                  "error: -i: given twice (give it once) (see ./mamba lm.bin --help)");
    // A value that looks like a flag is a value, not a second flag.
    check_refused(run(kMamba, {m, "-i", "-i", "-n", "1"}, t.path), 1,
                  "error: " + m + ": file is 1 bytes, too small for the 256-byte header (truncated?)");
}

TEST_CASE("integer flags: negative, out of range or past 2^64 is one usage line with the human bound") {
    TempDir t("mmia_outputs");
    const std::string u64 = "[0, 18446744073709551615]";
    struct Row {
        std::string bin;
        std::vector<std::string> args;
        std::string line;
    };
    const std::vector<Row> rows = {
        {kAttack, {"--seed", "-1"}, "error: --seed: '-1' is not an integer in " + u64 + " (see --help)"},
        {kAttack, {"--seed", "18446744073709551616"},
         "error: --seed: '18446744073709551616' is not an integer in " + u64 + " (see --help)"},
        {kAttack, {"--ds", "99999999999999999999"},
         "error: --ds: '99999999999999999999' is not an integer in [10, 1073741824] (see --help)"},
        {kTrain, {"--seed", "-1"}, "error: --seed: '-1' is not an integer in " + u64 + " (see --help)"},
        {kTrain, {"--seed", "18446744073709551616"},
         "error: --seed: '18446744073709551616' is not an integer in " + u64 + " (see --help)"},
        {kExtract, {"--seeds", "1,-1"}, "error: --seeds: '-1' is not an integer in " + u64 + " (see --help)"},
        {kExtract, {"--seeds", "18446744073709551616"},
         "error: --seeds: '18446744073709551616' is not an integer in " + u64 + " (see --help)"},
        {kCorpus, {"build", "--name", "prose", "--seed", "-1"},
         "error: --seed: '-1' is not an integer in " + u64 + " (see --help)"},
        {kExport, {"image", "--index", "-1", "--output", t.file("o.bin")},
         "error: --index: '-1' is not an integer in [0, 10000000] (see --help)"},
        {kExport, {"image", "--count", "1e3", "--output", t.file("o.bin")},
         "error: --count: '1e3' is not an integer in [0, 10000000] (see --help)"},
    };
    for (const Row& r : rows) {
        CAPTURE(r.bin);
        CAPTURE(r.line);
        check_refused(run(r.bin, r.args, t.path), 2, r.line);
    }
    // The LM command line's seed (engine/lm.h): the same rule.
    for (const std::string s : {"-1", "18446744073709551616"})
        check_refused(run(kMamba, {t.file("lm.bin"), "-i", "ab", "-s", s}, t.path), 2,
                      "error: -s: '" + s + "' is not an integer seed in " + u64 + " (see ./mamba lm.bin --help)");
    CHECK(!cli_file_exists(t.file("o.bin")));
    // The largest seed is accepted: it is recorded as given, not wrapped
    // (bin/attack refuses later, on --ds, before writing anything).
    CliRun big = run(kAttack, {"--seed", "18446744073709551615", "--ds", "40000", "--model", "cnn", "--run-dir",
                               t.file("run")},
                     t.path);
    check_refused(big, 1, "error: --ds 40000 is too large: 3 target(s) and the shadows need 320000 examples, the dataset has 70000");
}

TEST_CASE("the dataset asked for and the files found must agree (bin/export, bin/train, bin/attack)") {
    TempDir t("mmia_outputs");
    const std::string fashion_dir = "/usr/share/datasets/fashion-mnist";
    const std::string as_fashion = "error: data/mnist: holds the MNIST files (the labels are MNIST's), not --dataset "
                                   "fashion (Fashion-MNIST); give --data-dir the directory with the Fashion-MNIST files";
    check_refused(run(kExport, {"image", "--dataset", "fashion", "--data-dir", "data/mnist", "--output", t.file("o.bin")},
                      t.path),
                  1, as_fashion);
    CHECK(!cli_file_exists(t.file("o.bin")));
    check_refused(run(kTrain, {"--model", "cnn", "--preset", "shokri", "--dataset", "fashion", "--data-dir",
                               "data/mnist", "--output", t.file("c.pt")},
                      t.path),
                  1, as_fashion);
    CHECK(!cli_file_exists(t.file("c.pt")));
    check_refused(run(kAttack, {"--model", "cnn", "--dataset", "fashion", "--data-dir", "data/mnist", "--run-dir",
                                t.file("run")},
                      t.path),
                  1, as_fashion);
    CHECK(!cli_file_exists(t.file("run")));
    // The other way round, where the Debian package is installed.
    if (!cli_file_exists(fashion_dir + "/t10k-labels-idx1-ubyte.gz")) {
        cli_skip("Fashion-MNIST is not installed in " + fashion_dir + " (make setup)");
        return;
    }
    check_refused(run(kExport, {"image", "--dataset", "mnist", "--data-dir", fashion_dir, "--output", t.file("o.bin")},
                      t.path),
                  1,
                  "error: " + fashion_dir + ": holds the Fashion-MNIST files (the labels are Fashion-MNIST's), not "
                  "--dataset mnist (MNIST); give --data-dir the directory with the MNIST files");
    // A directory mixing the two: MNIST's train files beside Fashion-MNIST's
    // test files is named as a mix, file by file, whichever --dataset is asked.
    const std::string mix = t.file("mix");
    REQUIRE(mkdir(mix.c_str(), 0755) == 0);
    const std::string cwd = std::filesystem::current_path().string();
    for (const char* f : {"train-images-idx3-ubyte", "train-labels-idx1-ubyte"})
        REQUIRE(symlink((cwd + "/data/mnist/" + f).c_str(), (mix + "/" + f).c_str()) == 0);
    for (const char* f : {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"})
        REQUIRE(symlink((fashion_dir + "/" + f).c_str(), (mix + "/" + f).c_str()) == 0);
    for (const char* ds : {"mnist", "fashion"})
        check_refused(run(kExport, {"image", "--dataset", ds, "--data-dir", mix, "--output", t.file("o.bin")}, t.path),
                      1,
                      "error: " + mix + ": mixes two datasets: train-labels-idx1-ubyte is MNIST's and "
                      "t10k-labels-idx1-ubyte.gz is Fashion-MNIST's; give --data-dir a directory with the four files of " +
                      std::string(ds[0] == 'm' ? "MNIST" : "Fashion-MNIST"));
    // One file of another dataset beside files of none: that file is named.
    // (MNIST's test labels with one label changed are nobody's official file.)
    std::string labels = cli_read_text("data/mnist/t10k-labels-idx1-ubyte");
    labels[8] = char((labels[8] + 1) % 10);
    REQUIRE(unlink((mix + "/t10k-labels-idx1-ubyte.gz").c_str()) == 0);
    REQUIRE(unlink((mix + "/t10k-images-idx3-ubyte.gz").c_str()) == 0);
    REQUIRE(symlink((cwd + "/data/mnist/t10k-images-idx3-ubyte").c_str(), (mix + "/t10k-images-idx3-ubyte").c_str()) == 0);
    write_text(mix + "/t10k-labels-idx1-ubyte", labels);
    check_refused(run(kExport, {"image", "--dataset", "fashion", "--data-dir", mix, "--output", t.file("o.bin")}, t.path),
                  1,
                  "error: " + mix + ": train-labels-idx1-ubyte is MNIST's, not Fashion-MNIST's (--dataset fashion); "
                  "give --data-dir a directory with the four files of Fashion-MNIST");
    CHECK(run(kExport, {"image", "--dataset", "mnist", "--data-dir", mix, "--output", t.file("m2.bin")}, t.path).code == 0);
    CHECK(!cli_file_exists(t.file("o.bin")));
    // Each dataset in its own directory is read.
    CHECK(run(kExport, {"image", "--dataset", "fashion", "--data-dir", fashion_dir, "--output", t.file("f.bin")},
              t.path).code == 0);
    CHECK(run(kExport, {"image", "--dataset", "mnist", "--data-dir", "data/mnist", "--output", t.file("m.bin")},
              t.path).code == 0);
}

TEST_CASE("a refused bin/attack run writes nothing, the corrected command runs, and a null-member run says so") {
    TempDir t("mmia_outputs");
    const std::string rd = t.file("run");
    const std::vector<std::string> small = {"--model", "cnn", "--shadow", "1", "--targets", "1", "--epochs", "1",
                                            "--threads", "1", "--seed", "3", "--run-dir", rd, "--null-members"};
    auto with = [&](std::vector<std::string> extra) {
        std::vector<std::string> a = small;
        a.insert(a.end(), extra.begin(), extra.end());
        return a;
    };
    check_refused(run(kAttack, with({"--ds", "40000"}), t.path), 1,
                  "error: --ds 40000 is too large: 1 target(s) and the shadows need 200000 examples, the dataset has "
                  "70000");
    CHECK_MESSAGE(!cli_file_exists(rd), "a refused run left " << rd);
    std::vector<std::string> lira = with({"--ds", "40000"});
    lira.insert(lira.end(), {"--protocol", "lira"});
    lira[3] = "2";                                    // lira needs 2 reference models
    lira.erase(lira.begin() + 4, lira.begin() + 6);  // --targets: shokri only
    check_refused(run(kAttack, lira, t.path), 1,
                  "error: --ds 40000 is too large: lira needs a pool of 80000 examples, the dataset has 70000");
    CHECK(!cli_file_exists(rd));
    // bin/extract: a refused run leaves no run directory either.
    check_refused(run(kExtract, {"--corpus", "nosuch", "--run-dir", t.file("xrun")}, t.path), 1,
                  "error: corpus 'nosuch' is not built (data/corpora/nosuch/manifest.json missing): bin/corpus build "
                  "--name nosuch --canaries 2");
    CHECK(!cli_file_exists(t.file("xrun")));

    // The corrected command: not blocked by the refusal, and its first
    // lines say it is a sanity run and what to expect.
    CliRun r = run(kAttack, with({"--ds", "10"}), t.path);
    INFO("stdout: " << r.out << "\nstderr: " << r.err);
    REQUIRE(r.code == 0);
    const std::string line = "null-members sanity run (not a real experiment): each target's \"members\" are fresh "
                             "examples it never trained on, so every attack should score AUC about 0.5 (within "
                             "noise); a clearly higher AUC means a leak in the pipeline\n";
    const size_t at = r.out.find(line);
    REQUIRE(at != std::string::npos);
    CHECK(r.out.compare(0, 8, "attack: ") == 0);           // right after the plan line
    CHECK(at == r.out.find('\n') + 1);
    CHECK(r.out.find("Sanity") == std::string::npos);
}
