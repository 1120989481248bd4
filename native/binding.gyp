{
  "targets": [{
    "target_name": "lowbit_native",
    "sources": ["addon.cc", "kernels.cc", "qgemm.cc", "linalg64.cc"],
    "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fno-fast-math"],
    "cflags_cc!": ["-fno-exceptions"],
    "libraries": ["-lopenblas", "-lpthread"]
  }]
}
