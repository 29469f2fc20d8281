{
  "variables": {
    "libtorch%": "<!(echo ${LIBTORCH:-})",
    "dnnl%": "<!(test -f /usr/include/oneapi/dnnl/dnnl.hpp && echo 1 || echo 0)",
    "cuda%": "<!(test -n \"${LIBTORCH:-}\" && test -f \"${LIBTORCH:-}/lib/libtorch_cuda.so\" && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "deepreduce_native",
      "sources": ["addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-Wno-unused-parameter", "-Wno-deprecated-declarations"],
      "conditions": [
        ["libtorch==''", {
          "include_dirs": ["/usr/include", "/usr/include/torch/csrc/api/include"],
          "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"],
          "conditions": [["dnnl==1", { "defines": ["DEEPREDUCE_DNNL"], "libraries": ["-ldnnl"] }]]
        }, {
          "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
          "libraries": ["-L<(libtorch)/lib", "-Wl,-rpath,<(libtorch)/lib", "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10", "-Wl,--as-needed"],
          "conditions": [["cuda==1", { "libraries": ["-Wl,--no-as-needed", "-ltorch_cuda", "-lc10_cuda", "-Wl,--as-needed"] }]]
        }]
      ]
    }
  ]
}
