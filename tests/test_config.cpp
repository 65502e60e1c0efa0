// test_config.cpp: config.json presets and their validation.
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "common/config.h"

using namespace mmia;

TEST_CASE("the shipped config.json resolves its presets") {
    json cfg = load_config_file("config.json");
    ModelSpec def = resolve_preset(cfg, "mamba", "");
    CHECK(def.preset == "mamba-mnist");
    CHECK(def.mamba.patch_h == 7);
    CHECK(def.mamba.dt_rank == 4);  // "auto" = ceil(64 / 16)
    ModelSpec seed = resolve_preset(cfg, "mamba", "mamba-seed002");
    // Seed 002's layout: whole image -> one token, dim 16, 1 layer, d_state 8, d_conv 5, expand 2.
    CHECK(seed.mamba.patch_h == 28);
    CHECK(seed.mamba.patch_w == 28);
    CHECK(seed.mamba.d_model == 16);
    CHECK(seed.mamba.n_layers == 1);
    CHECK(seed.mamba.d_state == 8);
    CHECK(seed.mamba.d_conv == 5);
    CHECK(seed.mamba.expand == 2);
    CHECK(seed.mamba.dt_rank == 1);
    TrainConfig t = resolve_training(cfg, "mamba-mnist");
    CHECK(t.batch_size == 128);
    CHECK(t.epochs == 10);
    CHECK(t.learning_rate == doctest::Approx(0.003));  // the preset overrides 0.001
    CHECK(resolve_training(cfg, "").learning_rate == doctest::Approx(0.001));
    CHECK(t.save_dir == "checkpoints");
}

TEST_CASE("bad presets are refused with a message that names the problem") {
    json cfg = load_config_file("config.json");
    CHECK_THROWS_WITH_AS(resolve_preset(cfg, "mamba", "nope"), doctest::Contains("known: "),
                         std::runtime_error);
    json bad = cfg;
    bad["presets"]["mamba-mnist"]["d_modle"] = 3;
    CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "mamba-mnist"),
                         doctest::Contains("unknown field \"d_modle\""), std::runtime_error);
    bad = cfg;
    bad["presets"]["mamba-mnist"]["d_state"] = 0;
    CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "mamba-mnist"), doctest::Contains("d_state"),
                         std::runtime_error);
    bad = cfg;
    bad["presets"]["mamba-mnist"]["pool"] = "max";
    CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "mamba-mnist"), doctest::Contains("pool"),
                         std::runtime_error);
    bad = cfg;
    bad["presets"]["mamba-mnist"].erase("patch");
    CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "mamba-mnist"), doctest::Contains("missing"),
                         std::runtime_error);
    bad = cfg;
    bad["training"]["batch_size"] = -1;
    CHECK_THROWS_AS(resolve_training(bad, ""), std::runtime_error);
    MambaConfig c = resolve_preset(cfg, "mamba", "mamba-mnist").mamba;
    c.patch_h = 5;
    CHECK_THROWS_WITH_AS(validate_mamba(c, 1, 28, 28), doctest::Contains("does not tile"),
                         std::runtime_error);
}

TEST_CASE("training augment: optional (\"none\"), checked, recorded only when used") {
    json cfg = load_config_file("config.json");
    cfg["training"].erase("augment");
    TrainConfig t = resolve_training(cfg, "shokri");
    CHECK(t.augment == "none");
    CHECK_FALSE(to_json(t).contains("augment"));  // older checkpoints keep their identity
    cfg["training"]["augment"] = "crop-flip";
    t = resolve_training(cfg, "shokri");
    CHECK(t.augment == "crop-flip");
    CHECK(to_json(t)["augment"] == "crop-flip");
    cfg["training"]["augment"] = "rotate";
    CHECK_THROWS_WITH_AS(resolve_training(cfg, ""), doctest::Contains("\"augment\" = \"rotate\" is not one of"),
                         std::runtime_error);
    cfg["training"]["augment"] = 1;
    CHECK_THROWS_WITH_AS(resolve_training(cfg, ""), doctest::Contains("\"augment\" must be one of"),
                         std::runtime_error);
}

TEST_CASE("dp_learning_rate: optional, checked, used only under DP-SGD, never written") {
    json cfg = load_config_file("config.json");
    TrainConfig t = resolve_training(cfg, "mamba-mnist");
    CHECK(t.learning_rate == 0.003);
    CHECK(t.dp_learning_rate == 0.03);  // BENCHMARKS.md, a DP learning rate per architecture
    CHECK(resolve_training(cfg, "shokri").dp_learning_rate == 0.003);
    CHECK_FALSE(to_json(t).contains("dp_learning_rate"));  // a run records the rate it used
    use_dp_learning_rate(t);
    CHECK(t.learning_rate == 0.03);
    TrainConfig plain = resolve_training(cfg, "mamba-seed000");  // none set: the rate stays
    CHECK(plain.dp_learning_rate == 0);
    const double before = plain.learning_rate;
    use_dp_learning_rate(plain);
    CHECK(plain.learning_rate == before);
    cfg["training"]["dp_learning_rate"] = 0;  // the whole line, readable bounds (docs/BAD_INPUT.md)
    CHECK_THROWS_WITH_AS(resolve_training(cfg, ""), "training config: \"dp_learning_rate\" = 0 is outside [1e-12, 10]",
                         std::runtime_error);
    cfg["training"]["dp_learning_rate"] = std::nextafter(10.0, 11.0);  // as it reads back: %f said "10.000000"
    CHECK_THROWS_WITH_AS(resolve_training(cfg, ""), doctest::Contains("= 10.000000000000002 is outside [1e-12, 10]"),
                         std::runtime_error);
    cfg["training"]["dp_learning_rate"] = "fast";
    CHECK_THROWS_WITH_AS(resolve_training(cfg, ""), doctest::Contains("dp_learning_rate"), std::runtime_error);
}

TEST_CASE("config files that are not JSON objects are refused") {
    CHECK_THROWS_WITH_AS(load_config_file("/nonexistent/config.json"),
                         doctest::Contains("cannot open"), std::runtime_error);
    char path[] = "/tmp/mmia_cfg_XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, "{\"presets\": [1,", 15) == 15);
    close(fd);
    CHECK_THROWS_AS(load_config_file(path), std::runtime_error);
    unlink(path);
}

TEST_CASE("a config survives the JSON round trip used by checkpoints") {
    json cfg = load_config_file("config.json");
    MambaConfig c = resolve_preset(cfg, "mamba", "mamba-mnist").mamba;
    MambaConfig back = mamba_from_json(to_json(c));
    CHECK(to_json(back) == to_json(c));
}

TEST_CASE("image Mamba presets resolve; stem, norm and dropout fields are optional, checked and round-trip") {
    json cfg = load_config_file("config.json");
    MambaConfig s = resolve_preset(cfg, "mamba", "mamba-seed000").mamba;
    // Seed 000: stem 3->32->64, 2x2 patches -> 256 tokens of width 64, 4 layers, d_state 16,
    // d_conv 4, expand 2, dt_rank 16, "same" conv, post-norm LayerNorm, dropout 0.1 / 0.2, mean pool.
    CHECK(s.stem == std::vector<int>{32, 64});
    CHECK((s.patch_h == 2 && s.patch_w == 2));
    CHECK((s.d_model == 64 && s.n_layers == 4 && s.d_state == 16 && s.d_conv == 4 && s.expand == 2));
    CHECK(s.dt_rank == 16);
    CHECK((s.conv == "same" && s.pool == "mean"));
    CHECK((s.norm == "layernorm" && s.norm_placement == "post"));
    CHECK((s.dropout == 0.1 && s.head_dropout == 0.2));
    CHECK(s.patch_channels(3) == 64);
    CHECK_NOTHROW(validate_mamba(s, 3, 32, 32));
    TrainConfig t = resolve_training(cfg, "mamba-seed000");
    CHECK((t.batch_size == 64 && t.learning_rate == 0.005 && t.weight_decay == 0));
    MambaConfig c = resolve_preset(cfg, "mamba", "mamba-cifar").mamba;
    CHECK((32 / c.patch_h) * (32 / c.patch_w) == 64);
    CHECK_NOTHROW(validate_mamba(c, 3, 32, 32));
    for (const MambaConfig* m : {&s, &c}) CHECK(to_json(mamba_from_json(to_json(*m))) == to_json(*m));

    // Absent fields are the defaults (what every model before them computed),
    // and to_json leaves default values out, so older checkpoints' records
    // still equal a new run's and resume.
    MambaConfig old = resolve_preset(cfg, "mamba", "mamba-mnist").mamba;
    CHECK((old.stem.empty() && old.norm == "rmsnorm" && old.norm_placement == "pre"));
    CHECK((old.dropout == 0 && old.head_dropout == 0));
    CHECK(old.patch_channels(1) == 1);
    for (const char* k : {"stem", "norm", "norm_placement", "dropout", "head_dropout"}) CHECK(!to_json(old).contains(k));

    auto refused = [&](const char* field, json value, const std::string& needle) {
        json bad = cfg;
        bad["presets"]["mamba-seed000"][field] = value;
        CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "mamba-seed000"), doctest::Contains(needle.c_str()),
                             std::runtime_error);
    };
    const std::string stem_msg = "\"stem\" must be a list of at most 8 channel counts, each 1..4096";
    refused("stem", "32", stem_msg);
    refused("stem", json::array({32, 0}), stem_msg);
    refused("stem", json::array({4097}), stem_msg);
    refused("stem", json::array({1.5}), stem_msg);
    refused("stem", json::array({1, 2, 3, 4, 5, 6, 7, 8, 9}), stem_msg);
    refused("norm", "batchnorm", "\"norm\" = \"batchnorm\" is not one of: rmsnorm, layernorm");
    refused("norm_placement", "middle", "is not one of: pre, post");
    refused("dropout", 1.0, "\"dropout\" = 1 is outside [0, 0.99]");
    refused("dropout", -0.1, "\"dropout\"");
    refused("head_dropout", "0.2", "\"head_dropout\" must be a number");
    json empty_stem = cfg;
    empty_stem["presets"]["mamba-seed000"]["stem"] = json::array();
    CHECK(resolve_preset(empty_stem, "mamba", "mamba-seed000").mamba.stem.empty());
}

TEST_CASE("stem_norm: batch by default; mamba-cifar-gn is mamba-cifar with 8 groups; bad values refused") {
    json cfg = load_config_file("config.json");
    MambaConfig bn = resolve_preset(cfg, "mamba", "mamba-cifar").mamba;
    MambaConfig gn = resolve_preset(cfg, "mamba", "mamba-cifar-gn").mamba;
    CHECK((bn.stem_norm == "batch" && bn.stem_groups == 0));
    CHECK((gn.stem_norm == "group" && gn.stem_groups == 8));
    CHECK(!to_json(bn).contains("stem_norm"));  // default left out: older checkpoints' records unchanged
    CHECK(to_json(gn)["stem_norm"] == "group");
    CHECK(to_json(gn)["stem_groups"] == 8);
    CHECK(to_json(mamba_from_json(to_json(gn))) == to_json(gn));
    // everything else is mamba-cifar's
    json a = to_json(gn);
    a.erase("stem_norm");
    a.erase("stem_groups");
    CHECK(a == to_json(bn));
    CHECK(resolve_training(cfg, "mamba-cifar-gn").dp_learning_rate == 0.01);

    auto refused = [&](json preset, const std::string& msg) {
        json bad = cfg;
        bad["presets"]["x"] = preset;
        CHECK_THROWS_WITH_AS(resolve_preset(bad, "mamba", "x"), doctest::Contains(msg.c_str()), std::runtime_error);
    };
    json p = cfg["presets"]["mamba-cifar-gn"];
    p["stem_norm"] = "layer";
    refused(p, "\"stem_norm\" = \"layer\" is not one of: batch, group");
    p = cfg["presets"]["mamba-cifar-gn"];
    p["stem_groups"] = 5;
    refused(p, "mamba config: \"stem_groups\" = 5 does not divide the stem width 32");
    p["stem_groups"] = 0;
    refused(p, "\"stem_groups\" = 0 is outside [1, 4096]");
    p.erase("stem_groups");
    refused(p, "missing field");
    p = cfg["presets"]["mamba-cifar"];
    p["stem_groups"] = 8;
    refused(p, "mamba config: \"stem_groups\" needs \"stem_norm\": \"group\"");
    p = cfg["presets"]["mamba-mnist"];
    p["stem_norm"] = "group";
    p["stem_groups"] = 1;
    refused(p, "mamba config: \"stem_norm\" needs a \"stem\"");
}

TEST_CASE("CNN presets: shokri and mambaris-cnn resolve, round-trip, and fit MNIST and CIFAR-10") {
    json cfg = load_config_file("config.json");
    ModelSpec def = resolve_preset(cfg, "cnn", "");
    CHECK(def.model == "cnn");
    CHECK(def.preset == "shokri");
    // pg1647: conv 5x5 32 tanh, maxpool 2, conv 3x3 32 tanh, maxpool 2, dense 128 tanh, dense 10
    const auto& L = def.cnn.layers;
    REQUIRE(L.size() == 7);
    CHECK((L[0].type == "conv" && L[0].kernel == 5 && L[0].out == 32 && L[0].padding == 0 &&
           L[0].activation == "tanh" && !L[0].batch_norm));
    CHECK((L[1].type == "maxpool" && L[1].kernel == 2));
    CHECK((L[2].type == "conv" && L[2].kernel == 3 && L[2].out == 32 && L[2].activation == "tanh"));
    CHECK((L[5].type == "dense" && L[5].out == 128 && L[5].activation == "tanh"));
    CHECK((L[6].type == "dense" && L[6].out == 0 && L[6].activation == "none"));
    CHECK(resolve_training(cfg, "shokri").batch_size == 32);
    ModelSpec mc = resolve_preset(cfg, "cnn", "mambaris-cnn");
    REQUIRE(mc.cnn.layers.size() == 6);
    CHECK((mc.cnn.layers[2].out == 128 && mc.cnn.layers[2].batch_norm && mc.cnn.layers[2].activation == "relu"));
    CHECK(mc.cnn.layers[4].type == "global_avg_pool");
    for (const ModelSpec* s : {&def, &mc}) {
        CHECK(to_json(cnn_from_json(to_json(s->cnn))) == to_json(s->cnn));  // strict both ways
        CHECK_NOTHROW(validate_cnn(s->cnn, 1, 28, 28, 10));
        CHECK_NOTHROW(validate_cnn(s->cnn, 3, 32, 32, 10));
    }
    // A CNN preset is not a Mamba one, and the reverse.
    CHECK_THROWS_WITH_AS(resolve_preset(cfg, "mamba", "shokri"), doctest::Contains("is a \"cnn\" model"),
                         std::runtime_error);
    CHECK_THROWS_WITH_AS(resolve_preset(cfg, "cnn", "mamba-mnist"), doctest::Contains("is a \"mamba\" model"),
                         std::runtime_error);
}

TEST_CASE("bad CNN layer lists are refused, naming the layer") {
    json cfg = load_config_file("config.json");
    auto refused = [&](json preset, const std::string& needle) {
        json c = cfg;
        c["presets"]["bad"] = preset;
        CHECK_THROWS_WITH_AS(resolve_preset(c, "cnn", "bad"), doctest::Contains(needle.c_str()), std::runtime_error);
    };
    json p = cfg["presets"]["shokri"];
    json b = p;
    b["layers"][0]["kernal"] = 3;
    refused(b, "layer 0 (conv): unknown field \"kernal\"");
    b = p;
    b["layers"][0]["activation"] = "sigmoid";
    refused(b, "activation");
    b = p;
    b["layers"][0]["kernel"] = 0;
    refused(b, "kernel");
    b = p;
    b["layers"][0]["padding"] = 5;  // >= kernel
    refused(b, "padding");
    b = p;
    b["layers"][1]["type"] = "avgpool";
    refused(b, "layer 1");
    b = p;
    b["layers"][5]["out"] = "many";
    refused(b, "out");
    b = p;
    b["layers"][0]["batch_norm"] = 1;
    refused(b, "batch_norm");
    b = p;
    b["layers"] = json::array();
    refused(b, "non-empty");
    b = p;
    b["layers"][0].erase("out");
    refused(b, "missing");

    CnnConfig c = resolve_preset(cfg, "cnn", "shokri").cnn;
    CHECK_THROWS_WITH_AS(validate_cnn(c, 1, 6, 6, 10), doctest::Contains("layer 2 (conv)"), std::runtime_error);
    CnnConfig no_flatten = c;
    no_flatten.layers.erase(no_flatten.layers.begin() + 4);
    CHECK_THROWS_WITH_AS(validate_cnn(no_flatten, 1, 28, 28, 10), doctest::Contains("flatten"), std::runtime_error);
    CnnConfig head_act = c;
    head_act.layers.back().activation = "relu";
    CHECK_THROWS_WITH_AS(validate_cnn(head_act, 1, 28, 28, 10), doctest::Contains("last cnn layer"), std::runtime_error);
    CnnConfig conv_after = c;
    conv_after.layers.insert(conv_after.layers.begin() + 5, c.layers[0]);
    CHECK_THROWS_WITH_AS(validate_cnn(conv_after, 1, 28, 28, 10), doctest::Contains("only dense"), std::runtime_error);
    CHECK_THROWS_WITH_AS(validate_cnn(c, 1, 28, 28, 0), doctest::Contains("n_classes 0"), std::runtime_error);
}

TEST_CASE("malformed config.json structure gets a runtime_error naming the field, never a raw JSON error") {
    json cfg = load_config_file("config.json");
    // Each would reach the user as "[json.exception.type_error.NNN] ..." if
    // the reader trusted the file's shape.
    auto refused = [](const json& bad, const std::string& preset, const char* needle) {
        INFO(bad.dump().substr(0, 200));
        auto resolve = [&] { resolve_training(bad, resolve_preset(bad, "mamba", preset).preset); };
        CHECK_THROWS_WITH_AS(resolve(), doctest::Contains(needle), std::runtime_error);
    };
    json bad = cfg;
    bad["presets"]["mamba-mnist"] = 5;
    refused(bad, "mamba-mnist", "must be a JSON object");
    bad = cfg;
    bad["default_preset"]["mamba"] = 3;
    refused(bad, "", "no default preset");
    bad = cfg;
    bad["presets"]["mamba-mnist"]["model"] = 7;
    refused(bad, "mamba-mnist", "not \"mamba\"");
    bad = cfg;
    bad["training"] = 3;
    refused(bad, "mamba-mnist", "\"training\" must be a JSON object");
    bad = cfg;
    bad["presets"]["mamba-mnist"]["training"] = "fast";
    refused(bad, "mamba-mnist", "\"training\" must be a JSON object");
    bad = cfg;
    bad["training"]["seed"] = -5;
    refused(bad, "mamba-mnist", "seed");
    bad = cfg;
    bad["presets"]["mamba-mnist"]["patch"] = {4294967303ll, 7};  // 2^32 + 7: would truncate to 7
    refused(bad, "mamba-mnist", "each 1..4096");
}

TEST_CASE("config.json: a FIFO, a huge file and deep nesting are refused before parsing") {
    char dir[] = "/tmp/mmia_cfg_dir_XXXXXX";
    REQUIRE(mkdtemp(dir) != nullptr);
    const std::string d = dir;
    // A FIFO would block the reader for ever (nobody writes to it).
    const std::string fifo = d + "/fifo.json";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    CHECK_THROWS_WITH_AS(load_config_file(fifo), doctest::Contains("not a regular file"), std::runtime_error);
    CHECK_THROWS_WITH_AS(load_config_file(d), doctest::Contains("not a regular file"), std::runtime_error);
    const std::string big = d + "/big.json";
    {
        std::string text = "{\"pad\": \"" + std::string(kMaxConfigBytes, 'x') + "\"}";
        FILE* f = fopen(big.c_str(), "wb");
        REQUIRE(f != nullptr);
        REQUIRE(fwrite(text.data(), 1, text.size(), f) == text.size());
        fclose(f);
    }
    CHECK_THROWS_WITH_AS(load_config_file(big), doctest::Contains("more than the cap"), std::runtime_error);
    const std::string deep = d + "/deep.json";
    {
        // 100,000 levels: json's recursive copy would overflow the stack.
        std::string text = "{\"a\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
        FILE* f = fopen(deep.c_str(), "wb");
        REQUIRE(f != nullptr);
        REQUIRE(fwrite(text.data(), 1, text.size(), f) == text.size());
        fclose(f);
    }
    CHECK_THROWS_WITH_AS(load_config_file(deep), doctest::Contains("nested more than 64 levels"),
                         std::runtime_error);
    // Brackets inside strings do not count.
    CHECK_NOTHROW(check_json_depth("{\"s\": \"" + std::string(1000, '[') + "\\\"\"}", "t"));
    std::filesystem::remove_all(d);
}

TEST_CASE("language-model presets resolve, round-trip through the checkpoint JSON, and bad ones are refused") {
    json cfg = load_config_file("config.json");
    ModelSpec m = resolve_preset(cfg, "mamba-lm", "");
    CHECK(m.preset == "mamba-lm-s");
    CHECK(m.mamba_lm.block.d_model == 64);
    CHECK(m.mamba_lm.block.dt_rank == 4);  // "auto"
    CHECK(m.mamba_lm.block.conv == "causal");
    CHECK(m.mamba_lm.block.norm == "rmsnorm");
    CHECK(m.mamba_lm.block.norm_placement == "pre");
    CHECK(m.mamba_lm.context == 256);
    CHECK(m.mamba_lm.vocab == 256);
    ModelSpec t = resolve_preset(cfg, "transformer-lm", "transformer-lm-l");
    CHECK(t.transformer_lm.d_model == 256);
    CHECK(t.transformer_lm.n_heads == 8);
    CHECK(t.transformer_lm.head_dim() == 32);
    CHECK(t.transformer_lm.rotary_ndims() == 8);  // int(32 * 0.25)
    CHECK(t.transformer_lm.d_ff == 1024);
    CHECK(t.transformer_lm.parallel_residual);
    CHECK(is_lm_model("mamba-lm"));
    CHECK_FALSE(is_lm_model("mamba"));
    // Round trip: what a checkpoint records reads back to the same config.
    CHECK(to_json(mamba_lm_from_json(to_json(m.mamba_lm))) == to_json(m.mamba_lm));
    CHECK(to_json(transformer_lm_from_json(to_json(t.transformer_lm))) == to_json(t.transformer_lm));
    // A preset of one kind asked for as the other.
    CHECK_THROWS_WITH_AS(resolve_preset(cfg, "transformer-lm", "mamba-lm-s"), doctest::Contains("is a \"mamba-lm\" model"),
                         std::runtime_error);
    struct Bad {
        const char* preset;
        const char* field;
        json value;
        const char* message;
    };
    const Bad bad[] = {
        {"transformer-lm-s", "n_heads", 3, "not a multiple of n_heads"},
        {"transformer-lm-s", "rotary_pct", 0.3125, "must be even"},  // int(16 * 0.3125) = 5
        {"transformer-lm-s", "context", 0, "\"context\" = 0 is outside [1, 65536]"},
        {"transformer-lm-s", "parallel_residual", 1, "\"parallel_residual\" must be true or false"},
        {"transformer-lm-s", "n_head", 4, "unknown field \"n_head\""},
        {"mamba-lm-s", "context", 70000, "is outside [1, 65536]"},
        {"mamba-lm-s", "vocab", 100, "\"vocab\" = 100 is outside [256, 65536]"},
        {"mamba-lm-s", "patch", json::array({1, 1}), "unknown field \"patch\""},
    };
    for (const Bad& b : bad) {
        CAPTURE(b.field);
        json c = cfg;
        c["presets"][b.preset][b.field] = b.value;
        const std::string kind = c["presets"][b.preset]["model"];
        CHECK_THROWS_WITH_AS(resolve_preset(c, kind, b.preset), doctest::Contains(b.message), std::runtime_error);
    }
    json c = cfg;
    c["presets"]["mamba-lm-s"].erase("context");
    CHECK_THROWS_WITH_AS(resolve_preset(c, "mamba-lm", "mamba-lm-s"), doctest::Contains("missing"), std::runtime_error);
    // checkpoint_every: optional, checked, recorded only when set.
    CHECK(resolve_training(cfg, "mamba-lm-s").checkpoint_every == 0);
    CHECK_FALSE(to_json(resolve_training(cfg, "mamba-lm-s")).contains("checkpoint_every"));
    c = cfg;
    c["training"]["checkpoint_every"] = 50;
    CHECK(to_json(resolve_training(c, "mamba-lm-s"))["checkpoint_every"] == 50);
    c["training"]["checkpoint_every"] = -1;
    CHECK_THROWS_WITH_AS(resolve_training(c, "mamba-lm-s"), doctest::Contains("checkpoint_every"), std::runtime_error);
}
