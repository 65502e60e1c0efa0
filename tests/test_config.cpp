// test_config.cpp: config.json presets and their validation.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdlib>

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
