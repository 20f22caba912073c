# The libtorch addon (build/Release/diffreg_torch.node).
#
# By default it builds against Debian's libtorch-dev (headers in /usr/include/torch, libraries on the
# system path). To use another libtorch, e.g. a CUDA build unpacked from pytorch.org, point LIBTORCH at
# its root before building:
#   LIBTORCH=/opt/libtorch npx node-gyp rebuild
# Headers then come from $LIBTORCH/include and $LIBTORCH/include/torch/csrc/api/include, libraries from
# $LIBTORCH/lib, which is also written into the addon's rpath so no LD_LIBRARY_PATH is needed at run time.
{
  "variables": {
    "libtorch%": "<!(node -p \"process.env.LIBTORCH || ''\")"
  },
  "targets": [
    {
      "target_name": "diffreg_torch",
      "sources": [
        "native/addon.cc",
        "native/allocator.cc",
        "native/attention.cc",
        "native/common.cc",
        "native/ops_tensor.cc",
        "native/ops_nn.cc",
        "native/ops_search.cc",
        "native/ops_registration.cc",
        "native/ops_descriptors.cc",
        "native/ops_losses.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      # NAPI_EXPERIMENTAL gives "basic" finalizers, which Node runs during garbage collection itself instead
      # of on a later event-loop turn: forgotten tensors are then freed even inside a synchronous loop.
      # Every finalizer in native/ takes Napi::BasicEnv and calls only GC-safe functions.
      "defines": [
        "NAPI_EXPERIMENTAL",
        "NAPI_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED"
      ],
      # libtorch needs RTTI and C++ exceptions, which node-gyp turns off by default.
      "cflags!": ["-fno-rtti", "-fno-exceptions"],
      "cflags_cc!": ["-fno-rtti", "-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      # -fopenmp: ATen's parallel_for is a header template, parallel only when our code is built with OpenMP
      # (Debian's libtorch uses libgomp too).
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-frtti", "-fopenmp", "-Wno-unused-parameter"],
      "ldflags": ["-fopenmp"],
      "conditions": [
        [
          "libtorch==''",
          {
            "include_dirs": ["/usr/include/torch/csrc/api/include"],
            "libraries": ["-ltorch", "-ltorch_cpu", "-lc10"]
          },
          {
            "include_dirs": ["<(libtorch)/include", "<(libtorch)/include/torch/csrc/api/include"],
            "libraries": [
              "-L<(libtorch)/lib",
              "-Wl,-rpath,<(libtorch)/lib",
              "-Wl,--no-as-needed",
              "-ltorch",
              "-ltorch_cpu",
              "-lc10",
              "-Wl,--as-needed"
            ]
          }
        ]
      ]
    }
  ]
}
