// Convolutions (channels-last, MLX layout), 1-3 spatial dims, plain or transposed.
#include <stdexcept>

#include "shim.h"

using namespace etm;

extern "C" {

// Each parameter array holds `spatial_dims` values (1, 2 or 3). output_padding is ignored
// unless `transposed`.
int etm_conv(
    int spatial_dims, bool transposed, const etm_array* x, const etm_array* w,
    const int32_t* stride, const int32_t* padding, const int32_t* dilation,
    const int32_t* output_padding, int groups, etm_stream s, etm_array** out) noexcept {
  return guarded([&] {
    if (stride == nullptr || padding == nullptr || dilation == nullptr ||
        (transposed && output_padding == nullptr)) {
      throw std::invalid_argument("null conv parameter pointer");
    }
    const auto& in = deref(x);
    const auto& wt = deref(w);
    auto st = to_stream(s);
    switch (spatial_dims) {
      case 1:
        emit(out, transposed ? mx::conv_transpose1d(in, wt, stride[0], padding[0], dilation[0],
                                                    output_padding[0], groups, st)
                             : mx::conv1d(in, wt, stride[0], padding[0], dilation[0], groups, st));
        return;
      case 2: {
        std::pair<int, int> str{stride[0], stride[1]};
        std::pair<int, int> pad{padding[0], padding[1]};
        std::pair<int, int> dil{dilation[0], dilation[1]};
        if (transposed) {
          std::pair<int, int> opad{output_padding[0], output_padding[1]};
          emit(out, mx::conv_transpose2d(in, wt, str, pad, dil, opad, groups, st));
        } else {
          emit(out, mx::conv2d(in, wt, str, pad, dil, groups, st));
        }
        return;
      }
      case 3: {
        std::tuple<int, int, int> str{stride[0], stride[1], stride[2]};
        std::tuple<int, int, int> pad{padding[0], padding[1], padding[2]};
        std::tuple<int, int, int> dil{dilation[0], dilation[1], dilation[2]};
        if (transposed) {
          std::tuple<int, int, int> opad{output_padding[0], output_padding[1], output_padding[2]};
          emit(out, mx::conv_transpose3d(in, wt, str, pad, dil, opad, groups, st));
        } else {
          emit(out, mx::conv3d(in, wt, str, pad, dil, groups, st));
        }
        return;
      }
      default:
        throw std::invalid_argument(
            "conv supports 1, 2 or 3 spatial dims, got " + std::to_string(spatial_dims));
    }
  });
}

}  // extern "C"
