// cxx_new.cpp — C++ allocation under the preload: plain, array, nothrow, sized and over-aligned
// new/delete plus std::vector/std::string/std::map churn, ending in a checksum the runner compares
// with a run without the preload; and checks that operator new lands in pyarena (dladdr of
// _Znwm, malloc_usable_size(new char[130]) == 144).
#include <dlfcn.h>
#include <malloc.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

int failures = 0;

void report(bool ok, const char *name, const std::string &why)
{
    if (ok) {
        std::printf("OK %s\n", name);
    } else {
        failures++;
        std::printf("FAIL %s: %s\n", name, why.c_str());
    }
}

const char *lib_of(void *addr)
{
    Dl_info info;
    if (addr == nullptr || dladdr(addr, &info) == 0 || info.dli_fname == nullptr)
        return "?";
    const char *slash = std::strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

struct alignas(64) Line {
    std::uint64_t v[8];
};

struct alignas(256) Big {
    unsigned char b[300];
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    return h;
}

}  // namespace

int main()
{
    std::uint64_t sum = 0;
    bool aligned_ok = true;

    // over-aligned single objects and arrays (operator new(size_t, align_val_t))
    for (int i = 0; i < 20000; i++) {
        Line *l = new Line;
        aligned_ok &= (reinterpret_cast<std::uintptr_t>(l) & 63) == 0;
        l->v[0] = static_cast<std::uint64_t>(i);
        sum = mix(sum, l->v[0]);
        delete l;
        Big *b = new Big[3];
        aligned_ok &= (reinterpret_cast<std::uintptr_t>(b) & 255) == 0;
        b[2].b[299] = static_cast<unsigned char>(i);
        sum = mix(sum, b[2].b[299]);
        delete[] b;
    }
    report(aligned_ok, "aligned_new", "alignas(64)/alignas(256) object misaligned");

    // nothrow new, plain new[] of many sizes, sized delete via class types
    bool nothrow_ok = true;
    for (int i = 1; i < 3000; i++) {
        char *p = new (std::nothrow) char[static_cast<std::size_t>(i)];
        nothrow_ok &= p != nullptr;
        if (p) {
            std::memset(p, i & 0xff, static_cast<std::size_t>(i));
            sum = mix(sum, static_cast<unsigned char>(p[i - 1]));
        }
        delete[] p;
        Line *l = new (std::nothrow) Line;
        nothrow_ok &= l != nullptr && (reinterpret_cast<std::uintptr_t>(l) & 63) == 0;
        delete l;
        auto *q = new std::uint64_t[static_cast<std::size_t>(i % 70) + 1]();
        sum = mix(sum, q[0]);
        delete[] q;
    }
    report(nothrow_ok, "nothrow_new", "nothrow new failed or misaligned");

    // huge request: std::bad_alloc, not a crash
    bool threw = false;
    try {
        volatile std::size_t huge = static_cast<std::size_t>(-1) / 2;
        char *never = new char[huge];
        delete[] never;
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    report(threw, "bad_alloc", "new char[SIZE_MAX/2] did not throw std::bad_alloc");
    void *nt = ::operator new(static_cast<std::size_t>(-1) / 2, std::nothrow);
    report(nt == nullptr, "nothrow_huge", "nothrow new of SIZE_MAX/2 did not return nullptr");

    // an alignment that is not a power of two (undefined behaviour) fails, as in libstdc++'s
    // own operator new: std::bad_alloc, or nullptr from the nothrow form; both before and
    // after 8 MiB of large blocks (pyarena's large path then takes its short ways)
    bool odd_ok = true;
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 1)
            for (int i = 0; i < 8; i++)
                ::operator delete(::operator new(static_cast<std::size_t>(1) << 20));
        for (std::size_t al : {static_cast<std::size_t>(48), static_cast<std::size_t>(4097)}) {
            void *q = ::operator new(100, std::align_val_t(al), std::nothrow);
            odd_ok &= q == nullptr;
            ::operator delete(q, std::align_val_t(al));
            bool threw_odd = false;
            try {
                q = ::operator new(100, std::align_val_t(al));
                ::operator delete(q, std::align_val_t(al));
            } catch (const std::bad_alloc &) {
                threw_odd = true;
            }
            odd_ok &= threw_odd;
        }
    }
    report(odd_ok, "odd_alignment", "new with alignment 48 or 4097 did not fail");

    // container churn
    for (int round = 0; round < 20; round++) {
        std::map<std::string, std::vector<int>> m;
        std::unordered_map<int, std::string> u;
        for (int i = 0; i < 5000; i++) {
            std::string k = "key-" + std::to_string((i * 7919 + round) % 3001);
            auto &v = m[k];
            v.push_back(i);
            if (v.size() > 3)
                v.erase(v.begin());
            u[i % 1234] += static_cast<char>('a' + i % 26);
        }
        for (const auto &kv : m) {
            sum = mix(sum, kv.first.size());
            for (int x : kv.second)
                sum = mix(sum, static_cast<std::uint64_t>(x));
        }
        for (int i = 0; i < 1234; i++)
            sum = mix(sum, u[i].size());
        std::vector<std::unique_ptr<std::string>> vs;
        for (int i = 0; i < 3000; i++)
            vs.emplace_back(new std::string(static_cast<std::size_t>(i % 600), 'z'));
        for (std::size_t i = 0; i < vs.size(); i += 2)
            vs[i].reset();
        for (const auto &s : vs)
            sum = mix(sum, s ? s->size() : 1);
    }
    std::printf("checksum %016llx\n", static_cast<unsigned long long>(sum));

    // operator new reaches pyarena
    char *c130 = new char[130];
    std::size_t u = malloc_usable_size(c130);
    report(u == 144, "new_usable_130", "malloc_usable_size(new char[130]) = " + std::to_string(u));
    delete[] c130;
    const char *names[] = { "_Znwm", "_Znam", "_ZdlPv", "_ZdaPv", "_ZdlPvm",
                            "_ZnwmSt11align_val_t", "_ZdlPvSt11align_val_t" };
    for (const char *n : names) {
        const char *lib = lib_of(dlsym(RTLD_DEFAULT, n));
        report(std::strcmp(lib, "libpyarena.so") == 0, (std::string("resolve_") + n).c_str(),
               std::string(n) + " resolves to " + lib);
    }
    std::printf("cxx_new %s\n", failures ? "BAD" : "OK");
    return failures ? 1 : 0;
}
