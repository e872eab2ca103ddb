{
  "targets": [
    {
      "target_name": "steerlab_ggml",
      "sources": ["ggml_addon.cc"],
      "include_dirs": ["<(ggml_include)"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O2"],
      "libraries": [
        "<(ggml_bins)/libggml-base.so",
        "<(ggml_bins)/libggml.v0.4.0.so",
        "-Wl,-rpath,<(ggml_bins)"
      ]
    }
  ]
}
