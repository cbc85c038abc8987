// The public header from C++: extern "C" linkage, the enums usable as C++
// types, strict warnings as errors (see CMakeLists.txt).
#include <cnorm/cnorm.h>

#include <cstdio>
#include <vector>

int main() {
    std::vector<double> x(12), y(12);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<double>(i * i);
    const cnorm_activation act = CNORM_ACT_GELU;
    const int st = cnorm_group_norm_f64(x.data(), y.data(), 1, 4, 3, 2, CNORM_NCHW, nullptr, nullptr, 1e-5, nullptr,
                                        nullptr, act);
    std::printf("C++ header: %s, isa %s\n", cnorm_status_string(st), cnorm_isa_name(cnorm_get_isa()));
    return st == CNORM_OK ? 0 : 1;
}
