// Dropout at inference: the identity, recorded as nothing or as one copy.
#include "ops/op_common.hpp"

namespace vkalex::ops {

Tensor dropout_inference(Recorder& rec, const Tensor& x, const Tensor* y) {
  const DType ft = detail::float_type("dropout", x);
  detail::check_tensor("dropout", "input", x, x.shape(), ft);
  if (!y || (y->aliases(x) && y->offset() == x.offset() && y->shape() == x.shape())) return x;
  detail::check_tensor("dropout", "output", *y, x.shape(), ft);
  rec.copy(x, *y);
  return *y;
}

}  // namespace vkalex::ops
