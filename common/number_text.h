// number_text.h: a double written as a person writes it, and as it reads back.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace mmia {

// v as "%.10g" when that reads back as the same double (every value given
// with at most 10 significant digits: "0.99", "1e-12", "10"), else with the
// fewest more digits that do (at most 17, which always do for a finite v):
// "10.000000000000002". Used where a number is a record or an error line
// (bin/attack's canonical --defence SPEC, config.json's range refusals).
inline std::string number_text(double v) {
    char b[40];
    for (int digits = 10; digits <= 17; digits++) {
        std::snprintf(b, sizeof b, "%.*g", digits, v);
        if (std::strtod(b, nullptr) == v) break;
    }
    return b;
}

}  // namespace mmia
