// deepreduce_native: a generic tensor-op surface over libtorch for Node (like tch-rs's C layer).
// No model, training or pipeline logic lives here: every function is one libtorch op.
#include <napi.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>
#include <torch/version.h>

#include <malloc.h>

// oneDNN directly, for convolutions with fused post-ops that libtorch 1.13 does not expose. Only with the system
// libtorch, which links the same system libdnnl (binding.gyp defines DEEPREDUCE_DNNL when its headers are there).
#ifdef DEEPREDUCE_DNNL
#include <dnnl.hpp>
#include <list>
#include <map>
#include <mutex>
#include <tuple>
#endif

#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------
// Tensor handle

class TensorWrap : public Napi::ObjectWrap<TensorWrap> {
 public:
  static Napi::FunctionReference ctor;
  at::Tensor t;

  explicit TensorWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorWrap>(info) {}
  ~TensorWrap() override { release(); }

  // Native memory is reported to V8 only for tensors that the garbage collector must free (account()): those
  // released by a scope are freed deterministically, and reporting them would trigger needless collections.
  void set(Napi::Env env, at::Tensor v) {
    t = std::move(v);
    env_ = env;
  }
  void account() {
    if (accounted_ > 0 || !t.defined() || env_ == nullptr) return;
    accounted_ = static_cast<int64_t>(t.numel() * t.element_size());
    if (accounted_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env_, accounted_);
  }
  void release() {
    if (accounted_ > 0 && env_ != nullptr) Napi::MemoryManagement::AdjustExternalMemory(env_, -accounted_);
    accounted_ = 0;
    t.reset();
  }

 private:
  napi_env env_ = nullptr;
  int64_t accounted_ = 0;
};
Napi::FunctionReference TensorWrap::ctor;

Napi::Value Wrap(Napi::Env env, at::Tensor t) {
  Napi::Object obj = TensorWrap::ctor.New({});
  TensorWrap::Unwrap(obj)->set(env, std::move(t));
  return obj;
}

// ---------------------------------------------------------------------------------------------
// Argument helpers

std::string DtypeName(at::ScalarType t);

std::string ShapeStr(const at::Tensor& t) {
  if (!t.defined()) return "undefined";
  std::ostringstream s;
  s << "[";
  for (int64_t i = 0; i < t.dim(); ++i) s << (i ? "," : "") << t.size(i);
  s << "] " << DtypeName(t.scalar_type());
  return s.str();
}

bool IsTensor(const Napi::Value& v) {
  return v.IsObject() && v.As<Napi::Object>().InstanceOf(TensorWrap::ctor.Value());
}

std::string DescribeArgs(const Napi::CallbackInfo& info) {
  std::ostringstream s;
  for (size_t i = 0; i < info.Length(); ++i) {
    if (i) s << ", ";
    Napi::Value v = info[i];
    if (IsTensor(v)) s << ShapeStr(TensorWrap::Unwrap(v.As<Napi::Object>())->t);
    else if (v.IsNumber()) s << v.As<Napi::Number>().DoubleValue();
    else if (v.IsBoolean()) s << (v.As<Napi::Boolean>().Value() ? "true" : "false");
    else if (v.IsString()) s << "'" << v.As<Napi::String>().Utf8Value() << "'";
    else if (v.IsArray()) {
      Napi::Array a = v.As<Napi::Array>();
      s << "[";
      for (uint32_t j = 0; j < a.Length(); ++j) {
        Napi::Value e = a.Get(j);
        if (j) s << ",";
        if (e.IsNumber()) s << e.As<Napi::Number>().Int64Value();
        else if (IsTensor(e)) s << ShapeStr(TensorWrap::Unwrap(e.As<Napi::Object>())->t);
        else s << "?";
      }
      s << "]";
    } else if (v.IsNull() || v.IsUndefined()) s << "null";
    else s << "?";
  }
  return s.str();
}

struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const at::Tensor& T(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || !IsTensor(info[i])) throw ArgError("argument " + std::to_string(i) + " must be a tensor");
  const at::Tensor& t = TensorWrap::Unwrap(info[i].As<Napi::Object>())->t;
  if (!t.defined()) throw ArgError("argument " + std::to_string(i) + " is a disposed tensor");
  return t;
}

at::Tensor OptT(const Napi::CallbackInfo& info, size_t i) {
  if (i >= info.Length() || info[i].IsNull() || info[i].IsUndefined()) return at::Tensor();
  return T(info, i);
}

bool Has(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && !info[i].IsNull() && !info[i].IsUndefined();
}

double Num(const Napi::CallbackInfo& info, size_t i, double def) {
  if (!Has(info, i)) return def;
  if (!info[i].IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}
double Num(const Napi::CallbackInfo& info, size_t i) {
  if (!Has(info, i)) throw ArgError("argument " + std::to_string(i) + " (number) is missing");
  return Num(info, i, 0);
}
int64_t Int(const Napi::CallbackInfo& info, size_t i, int64_t def) {
  return Has(info, i) ? static_cast<int64_t>(Num(info, i)) : def;
}
int64_t Int(const Napi::CallbackInfo& info, size_t i) { return static_cast<int64_t>(Num(info, i)); }
bool Bool(const Napi::CallbackInfo& info, size_t i, bool def) {
  if (!Has(info, i)) return def;
  return info[i].ToBoolean().Value();
}
std::string Str(const Napi::CallbackInfo& info, size_t i, const std::string& def) {
  if (!Has(info, i)) return def;
  if (!info[i].IsString()) throw ArgError("argument " + std::to_string(i) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

std::vector<int64_t> Ints(const Napi::CallbackInfo& info, size_t i) {
  if (!Has(info, i)) throw ArgError("argument " + std::to_string(i) + " (int list) is missing");
  if (info[i].IsNumber()) return {static_cast<int64_t>(info[i].As<Napi::Number>().DoubleValue())};
  if (!info[i].IsArray()) throw ArgError("argument " + std::to_string(i) + " must be an array of integers");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<int64_t> out(a.Length());
  for (uint32_t j = 0; j < a.Length(); ++j) {
    Napi::Value e = a.Get(j);
    if (!e.IsNumber()) throw ArgError("argument " + std::to_string(i) + " must be an array of integers");
    out[j] = static_cast<int64_t>(e.As<Napi::Number>().DoubleValue());
  }
  return out;
}

std::vector<at::Tensor> Tensors(const Napi::CallbackInfo& info, size_t i) {
  if (!Has(info, i) || !info[i].IsArray()) throw ArgError("argument " + std::to_string(i) + " must be an array of tensors");
  Napi::Array a = info[i].As<Napi::Array>();
  std::vector<at::Tensor> out;
  out.reserve(a.Length());
  for (uint32_t j = 0; j < a.Length(); ++j) {
    Napi::Value e = a.Get(j);
    if (!IsTensor(e)) throw ArgError("argument " + std::to_string(i) + " must be an array of tensors");
    const at::Tensor& t = TensorWrap::Unwrap(e.As<Napi::Object>())->t;
    if (!t.defined()) throw ArgError("argument " + std::to_string(i) + " holds a disposed tensor");
    out.push_back(t);
  }
  return out;
}

at::ScalarType ParseDtype(const std::string& s) {
  if (s == "float32") return at::kFloat;
  if (s == "float64") return at::kDouble;
  if (s == "float16") return at::kHalf;
  if (s == "bfloat16") return at::kBFloat16;
  if (s == "int64") return at::kLong;
  if (s == "int32") return at::kInt;
  if (s == "int16") return at::kShort;
  if (s == "int8") return at::kChar;
  if (s == "uint8") return at::kByte;
  if (s == "bool") return at::kBool;
  throw ArgError("unknown dtype '" + s + "' (float32, float64, float16, bfloat16, int64, int32, int16, int8, uint8, bool)");
}

std::string DtypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

at::Device ParseDevice(const std::string& s) {
  try {
    return at::Device(s);
  } catch (const c10::Error&) {
    throw ArgError("unknown device '" + s + "'");
  }
}

at::TensorOptions Opts(const Napi::CallbackInfo& info, size_t dtypeArg, size_t deviceArg) {
  at::TensorOptions o = at::TensorOptions().dtype(ParseDtype(Str(info, dtypeArg, "float32")));
  if (Has(info, deviceArg)) o = o.device(ParseDevice(Str(info, deviceArg, "cpu")));
  return o;
}

// A scalar argument: a JS number (or boolean) or a 0-d tensor's value.
bool IsScalarArg(const Napi::CallbackInfo& info, size_t i) {
  return i < info.Length() && (info[i].IsNumber() || info[i].IsBoolean());
}
at::Scalar ScalarArg(const Napi::CallbackInfo& info, size_t i) {
  if (info[i].IsBoolean()) return at::Scalar(info[i].As<Napi::Boolean>().Value());
  double v = info[i].As<Napi::Number>().DoubleValue();
  return at::Scalar(v);
}

std::vector<int64_t> OptInts(const Napi::CallbackInfo& info, size_t i) {
  return Has(info, i) ? Ints(info, i) : std::vector<int64_t>{};
}

// The exception boundary: every op reports its name and argument shapes; nothing aborts the process.
#define OP(name)                                                                                  \
  Napi::Value name##_impl(const Napi::CallbackInfo& info);                                        \
  Napi::Value name(const Napi::CallbackInfo& info) {                                              \
    try {                                                                                         \
      return name##_impl(info);                                                                   \
    } catch (const Napi::Error&) {                                                                \
      throw;                                                                                      \
    } catch (const c10::Error& e) {                                                               \
      throw Napi::Error::New(info.Env(), std::string(#name) + "(" + DescribeArgs(info) +          \
                                             "): " + e.what_without_backtrace());                 \
    } catch (const std::exception& e) {                                                           \
      throw Napi::Error::New(info.Env(), std::string(#name) + "(" + DescribeArgs(info) + "): " + \
                                             e.what());                                           \
    }                                                                                             \
  }                                                                                               \
  Napi::Value name##_impl(const Napi::CallbackInfo& info)

#define RET(expr) return Wrap(info.Env(), (expr))

// ---------------------------------------------------------------------------------------------
// Creation and conversion

OP(fromArray) {
  // fromArray(typedArray, shape, dtype?) copies the data into a new CPU tensor.
  if (!info[0].IsTypedArray()) throw ArgError("argument 0 must be a typed array");
  Napi::TypedArray ta = info[0].As<Napi::TypedArray>();
  std::vector<int64_t> shape = Ints(info, 1);
  at::ScalarType st;
  switch (ta.TypedArrayType()) {
    case napi_float32_array: st = at::kFloat; break;
    case napi_float64_array: st = at::kDouble; break;
    case napi_int32_array: st = at::kInt; break;
    case napi_bigint64_array: st = at::kLong; break;
    case napi_uint8_array: st = at::kByte; break;
    case napi_int8_array: st = at::kChar; break;
    case napi_int16_array: st = at::kShort; break;
    default: throw ArgError("unsupported typed array type (use Float32/Float64/Int32/BigInt64/Uint8/Int8/Int16Array)");
  }
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != static_cast<int64_t>(ta.ElementLength()))
    throw ArgError("shape holds " + std::to_string(n) + " elements but the array has " + std::to_string(ta.ElementLength()));
  uint8_t* base = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
  at::Tensor t = at::from_blob(base, shape, at::TensorOptions().dtype(st)).clone();
  if (Has(info, 2)) {
    at::ScalarType want = ParseDtype(Str(info, 2, "float32"));
    if (want != st) t = t.to(want);
  }
  RET(t);
}

OP(toArray) {
  at::Tensor t = T(info, 0).detach().to(at::kCPU).contiguous();
  if (t.scalar_type() == at::kHalf || t.scalar_type() == at::kBFloat16) t = t.to(at::kFloat);
  if (t.scalar_type() == at::kBool) t = t.to(at::kByte);
  Napi::Env env = info.Env();
  size_t n = static_cast<size_t>(t.numel());
  size_t bytes = n * t.element_size();
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(ab.Data(), t.data_ptr(), bytes);
  switch (t.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, ab, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, ab, 0);
    case at::kInt: return Napi::Int32Array::New(env, n, ab, 0);
    case at::kLong: return Napi::BigInt64Array::New(env, n, ab, 0);
    case at::kByte: return Napi::Uint8Array::New(env, n, ab, 0);
    case at::kChar: return Napi::Int8Array::New(env, n, ab, 0);
    case at::kShort: return Napi::Int16Array::New(env, n, ab, 0);
    default: throw ArgError("toArray: unsupported dtype " + DtypeName(t.scalar_type()));
  }
}

OP(item) { return Napi::Number::New(info.Env(), T(info, 0).item().toDouble()); }
OP(zeros) { RET(at::zeros(Ints(info, 0), Opts(info, 1, 2))); }
OP(ones) { RET(at::ones(Ints(info, 0), Opts(info, 1, 2))); }
OP(full) { RET(at::full(Ints(info, 0), Num(info, 1), Opts(info, 2, 3))); }
OP(empty) { RET(at::empty(Ints(info, 0), Opts(info, 1, 2))); }
OP(randn) { RET(at::randn(Ints(info, 0), Opts(info, 1, 2))); }
OP(rand) { RET(at::rand(Ints(info, 0), Opts(info, 1, 2))); }
OP(randint) { RET(at::randint(Int(info, 0), Int(info, 1), Ints(info, 2), Opts(info, 3, 4).dtype(at::kLong))); }
OP(randperm) { RET(at::randperm(Int(info, 0), at::TensorOptions().dtype(at::kLong))); }
OP(arange) { RET(at::arange(Num(info, 0), Num(info, 1), Num(info, 2, 1), Opts(info, 3, 4))); }

OP(shape) {
  const at::Tensor& t = T(info, 0);
  Napi::Array a = Napi::Array::New(info.Env(), t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) a.Set(static_cast<uint32_t>(i), Napi::Number::New(info.Env(), static_cast<double>(t.size(i))));
  return a;
}
OP(dtype) { return Napi::String::New(info.Env(), DtypeName(T(info, 0).scalar_type())); }
OP(device) { return Napi::String::New(info.Env(), T(info, 0).device().str()); }
OP(numel) { return Napi::Number::New(info.Env(), static_cast<double>(T(info, 0).numel())); }
OP(requiresGrad) { return Napi::Boolean::New(info.Env(), T(info, 0).requires_grad()); }
OP(isContiguous) {
  const at::Tensor& t = T(info, 0);
  std::string fmt = Str(info, 1, "contiguous");
  return Napi::Boolean::New(info.Env(), t.is_contiguous(fmt == "channels_last" ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous));
}
OP(dispose) {
  if (IsTensor(info[0])) TensorWrap::Unwrap(info[0].As<Napi::Object>())->release();
  return info.Env().Undefined();
}

OP(accountExternal) {
  if (IsTensor(info[0])) TensorWrap::Unwrap(info[0].As<Napi::Object>())->account();
  return info.Env().Undefined();
}

OP(toDtype) { RET(T(info, 0).to(ParseDtype(Str(info, 1, "float32")))); }
OP(toDevice) { RET(T(info, 0).to(ParseDevice(Str(info, 1, "cpu")))); }
OP(contiguous) {
  std::string fmt = Str(info, 1, "contiguous");
  if (fmt == "channels_last") RET(T(info, 0).contiguous(at::MemoryFormat::ChannelsLast));
  if (fmt != "contiguous") throw ArgError("memory format must be 'contiguous' or 'channels_last'");
  RET(T(info, 0).contiguous());
}
OP(clone) { RET(T(info, 0).clone()); }
OP(detach) { RET(T(info, 0).detach()); }

// ---------------------------------------------------------------------------------------------
// Elementwise

template <typename FT, typename FS>
Napi::Value Binary(const Napi::CallbackInfo& info, FT ft, FS fs) {
  const at::Tensor& a = T(info, 0);
  if (IsScalarArg(info, 1)) RET(fs(a, ScalarArg(info, 1)));
  RET(ft(a, T(info, 1)));
}

OP(add) {
  double alpha = Num(info, 2, 1.0);
  return Binary(info, [&](const at::Tensor& a, const at::Tensor& b) { return at::add(a, b, alpha); },
                [&](const at::Tensor& a, const at::Scalar& s) { return at::add(a, s, alpha); });
}
OP(sub) {
  double alpha = Num(info, 2, 1.0);
  return Binary(info, [&](const at::Tensor& a, const at::Tensor& b) { return at::sub(a, b, alpha); },
                [&](const at::Tensor& a, const at::Scalar& s) { return at::sub(a, s, alpha); });
}
OP(mul) {
  return Binary(info, [](const at::Tensor& a, const at::Tensor& b) { return at::mul(a, b); },
                [](const at::Tensor& a, const at::Scalar& s) { return at::mul(a, s); });
}
OP(div) {
  return Binary(info, [](const at::Tensor& a, const at::Tensor& b) { return at::div(a, b); },
                [](const at::Tensor& a, const at::Scalar& s) { return at::div(a, s); });
}
OP(pow) {
  return Binary(info, [](const at::Tensor& a, const at::Tensor& b) { return at::pow(a, b); },
                [](const at::Tensor& a, const at::Scalar& s) { return at::pow(a, s); });
}
OP(remainder) {
  return Binary(info, [](const at::Tensor& a, const at::Tensor& b) { return at::remainder(a, b); },
                [](const at::Tensor& a, const at::Scalar& s) { return at::remainder(a, s); });
}
OP(maximum) { RET(at::maximum(T(info, 0), T(info, 1))); }
OP(minimum) { RET(at::minimum(T(info, 0), T(info, 1))); }
#define CMP(name)                                                                              \
  OP(name) {                                                                                   \
    return Binary(info, [](const at::Tensor& a, const at::Tensor& b) { return at::name(a, b); }, \
                  [](const at::Tensor& a, const at::Scalar& s) { return at::name(a, s); });     \
  }
CMP(eq)
CMP(ne)
CMP(lt)
CMP(le)
CMP(gt)
CMP(ge)
OP(where) { RET(at::where(T(info, 0), T(info, 1), T(info, 2))); }

#define UNARY(name, expr) \
  OP(name) { RET(expr(T(info, 0))); }
UNARY(neg, at::neg)
UNARY(exp, at::exp)
UNARY(log, at::log)
UNARY(sqrt, at::sqrt)
UNARY(rsqrt, at::rsqrt)
UNARY(abs, at::abs)
UNARY(relu, at::relu)
UNARY(sigmoid, at::sigmoid)
UNARY(tanh, at::tanh)
UNARY(sign, at::sign)
UNARY(floor, at::floor)
UNARY(round, at::round)
UNARY(reciprocal, at::reciprocal)
UNARY(square, at::square)
UNARY(logicalNot, at::logical_not)
OP(clamp) {
  c10::optional<at::Scalar> lo, hi;
  if (Has(info, 1)) lo = at::Scalar(Num(info, 1));
  if (Has(info, 2)) hi = at::Scalar(Num(info, 2));
  RET(at::clamp(T(info, 0), lo, hi));
}

// ---------------------------------------------------------------------------------------------
// Linear algebra, convolution, normalisation, pooling

OP(matmul) { RET(at::matmul(T(info, 0), T(info, 1))); }
OP(linear) { RET(at::linear(T(info, 0), T(info, 1), OptT(info, 2))); }
OP(conv2d) {
  // conv2d(x, w, b?, stride, padding, dilation, groups)
  RET(at::conv2d(T(info, 0), T(info, 1), OptT(info, 2), Ints(info, 3), Ints(info, 4), Ints(info, 5), Int(info, 6, 1)));
}
OP(batchNorm) {
  // batchNorm(x, weight?, bias?, runningMean?, runningVar?, training, momentum, eps)
  RET(at::batch_norm(T(info, 0), OptT(info, 1), OptT(info, 2), OptT(info, 3), OptT(info, 4), Bool(info, 5, false),
                     Num(info, 6, 0.1), Num(info, 7, 1e-5), at::globalContext().userEnabledCuDNN()));
}
OP(dropout) { RET(at::dropout(T(info, 0), Num(info, 1), Bool(info, 2, true))); }
OP(avgPool2d) {
  // avgPool2d(x, kernel, stride, padding, ceilMode, countIncludePad)
  RET(at::avg_pool2d(T(info, 0), Ints(info, 1), OptInts(info, 2), Has(info, 3) ? Ints(info, 3) : std::vector<int64_t>{0},
                     Bool(info, 4, false), Bool(info, 5, true)));
}
OP(maxPool2d) {
  // maxPool2d(x, kernel, stride, padding, dilation, ceilMode)
  RET(at::max_pool2d(T(info, 0), Ints(info, 1), OptInts(info, 2), Has(info, 3) ? Ints(info, 3) : std::vector<int64_t>{0},
                     Has(info, 4) ? Ints(info, 4) : std::vector<int64_t>{1}, Bool(info, 5, false)));
}
OP(adaptiveAvgPool2d) { RET(at::adaptive_avg_pool2d(T(info, 0), Ints(info, 1))); }

// ---------------------------------------------------------------------------------------------
// Shape

OP(reshape) { RET(at::reshape(T(info, 0), Ints(info, 1))); }
OP(permute) { RET(T(info, 0).permute(Ints(info, 1))); }
OP(transpose) { RET(at::transpose(T(info, 0), Int(info, 1), Int(info, 2))); }
OP(flatten) { RET(at::flatten(T(info, 0), Int(info, 1, 0), Int(info, 2, -1))); }
OP(squeeze) {
  if (Has(info, 1)) RET(at::squeeze(T(info, 0), Int(info, 1)));
  RET(at::squeeze(T(info, 0)));
}
OP(unsqueeze) { RET(at::unsqueeze(T(info, 0), Int(info, 1))); }
OP(expand) { RET(T(info, 0).expand(Ints(info, 1))); }
OP(repeat) { RET(T(info, 0).repeat(Ints(info, 1))); }
OP(cat) { RET(at::cat(Tensors(info, 0), Int(info, 1, 0))); }
OP(stack) { RET(at::stack(Tensors(info, 0), Int(info, 1, 0))); }
OP(slice) {
  // slice(x, dim, start, end, step): Python's x[..., start:end:step, ...]
  const at::Tensor& t = T(info, 0);
  c10::optional<int64_t> start, end;
  if (Has(info, 2)) start = Int(info, 2);
  if (Has(info, 3)) end = Int(info, 3);
  RET(at::slice(t, Int(info, 1), start, end, Int(info, 4, 1)));
}
OP(select) { RET(at::select(T(info, 0), Int(info, 1), Int(info, 2))); }
OP(indexSelect) { RET(at::index_select(T(info, 0), Int(info, 1), T(info, 2))); }
OP(gather) { RET(at::gather(T(info, 0), Int(info, 1), T(info, 2))); }
OP(pad) { RET(at::constant_pad_nd(T(info, 0), Ints(info, 1), Num(info, 2, 0))); }
OP(flip) { RET(at::flip(T(info, 0), Ints(info, 1))); }
OP(oneHot) { RET(at::one_hot(T(info, 0), Int(info, 1, -1))); }

// ---------------------------------------------------------------------------------------------
// Reductions

OP(sum) {
  if (!Has(info, 1)) RET(at::sum(T(info, 0)));
  RET(at::sum(T(info, 0), Ints(info, 1), Bool(info, 2, false)));
}
OP(mean) {
  if (!Has(info, 1)) RET(at::mean(T(info, 0)));
  RET(at::mean(T(info, 0), Ints(info, 1), Bool(info, 2, false)));
}
OP(amax) { RET(at::amax(T(info, 0), OptInts(info, 1), Bool(info, 2, false))); }
OP(amin) { RET(at::amin(T(info, 0), OptInts(info, 1), Bool(info, 2, false))); }
OP(argmax) {
  c10::optional<int64_t> dim;
  if (Has(info, 1)) dim = Int(info, 1);
  RET(at::argmax(T(info, 0), dim, Bool(info, 2, false)));
}
OP(variance) {
  // variance(x, dims, unbiased, keepdim)
  RET(at::var(T(info, 0), at::OptionalIntArrayRef(Ints(info, 1)), Bool(info, 2, true), Bool(info, 3, false)));
}

// ---------------------------------------------------------------------------------------------
// Losses and softmax

OP(logSoftmax) { RET(at::log_softmax(T(info, 0), Int(info, 1, -1))); }
OP(softmax) { RET(at::softmax(T(info, 0), Int(info, 1, -1))); }

int64_t Reduction(const std::string& r) {
  if (r == "mean") return at::Reduction::Mean;
  if (r == "sum") return at::Reduction::Sum;
  if (r == "none") return at::Reduction::None;
  if (r == "batchmean") return at::Reduction::Sum;  // divided by the batch size below
  throw ArgError("reduction must be 'mean', 'sum', 'none' or 'batchmean'");
}

OP(crossEntropy) {
  // crossEntropy(logits [N,C], target int64 [N], reduction, labelSmoothing)
  RET(at::cross_entropy_loss(T(info, 0), T(info, 1), {}, Reduction(Str(info, 2, "mean")), -100, Num(info, 3, 0.0)));
}
OP(nllLoss) { RET(at::nll_loss(T(info, 0), T(info, 1), {}, Reduction(Str(info, 2, "mean")))); }
OP(klDiv) {
  // klDiv(logInput, target, reduction, logTarget): sum target * (log target - logInput), as torch's kl_div.
  const at::Tensor& x = T(info, 0);
  std::string red = Str(info, 2, "mean");
  at::Tensor out = at::kl_div(x, T(info, 1), Reduction(red), Bool(info, 3, false));
  if (red == "batchmean") out = out / static_cast<double>(x.size(0));
  RET(out);
}
OP(mseLoss) { RET(at::mse_loss(T(info, 0), T(info, 1), Reduction(Str(info, 2, "mean")))); }

// ---------------------------------------------------------------------------------------------
// Autograd

OP(setRequiresGrad) {
  at::Tensor t = T(info, 0);
  t.requires_grad_(Bool(info, 1, true));
  return info.Env().Undefined();
}
OP(backward) {
  at::Tensor t = T(info, 0);
  t.backward(OptT(info, 1), Bool(info, 2, false));
  return info.Env().Undefined();
}
OP(grad) {
  const at::Tensor& g = T(info, 0).grad();
  if (!g.defined()) return info.Env().Null();
  RET(g);
}
OP(setGrad) {
  at::Tensor t = T(info, 0);
  if (Has(info, 1)) t.mutable_grad() = T(info, 1);
  else t.mutable_grad().reset();
  return info.Env().Undefined();
}
OP(setGradEnabled) {
  bool prev = at::GradMode::is_enabled();
  at::GradMode::set_enabled(Bool(info, 0, true));
  return Napi::Boolean::New(info.Env(), prev);
}
OP(isGradEnabled) { return Napi::Boolean::New(info.Env(), at::GradMode::is_enabled()); }

// Inference mode as an explicit enter/exit pair (RAII guards cannot span JS calls).
std::vector<std::unique_ptr<c10::InferenceMode>> inference_guards;
OP(inferenceModeEnter) {
  inference_guards.emplace_back(std::make_unique<c10::InferenceMode>(true));
  return info.Env().Undefined();
}
OP(inferenceModeExit) {
  if (inference_guards.empty()) throw ArgError("not in inference mode");
  inference_guards.pop_back();
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// In-place updates (optimizers, initialisers). Return the same tensor handle (undefined result).

#define INPLACE_DONE return info.Env().Undefined()
OP(add_) {
  at::Tensor t = T(info, 0);
  double alpha = Num(info, 2, 1.0);
  if (IsScalarArg(info, 1)) t.add_(ScalarArg(info, 1), alpha);
  else t.add_(T(info, 1), alpha);
  INPLACE_DONE;
}
OP(mul_) {
  at::Tensor t = T(info, 0);
  if (IsScalarArg(info, 1)) t.mul_(ScalarArg(info, 1));
  else t.mul_(T(info, 1));
  INPLACE_DONE;
}
OP(addcmul_) {
  at::Tensor t = T(info, 0);
  t.addcmul_(T(info, 1), T(info, 2), Num(info, 3, 1.0));
  INPLACE_DONE;
}
OP(addcdiv_) {
  at::Tensor t = T(info, 0);
  t.addcdiv_(T(info, 1), T(info, 2), Num(info, 3, 1.0));
  INPLACE_DONE;
}
OP(copy_) {
  at::Tensor t = T(info, 0);
  t.copy_(T(info, 1));
  INPLACE_DONE;
}
OP(relu_) {
  at::Tensor t = T(info, 0);
  t.relu_();
  INPLACE_DONE;
}
OP(setData) {
  // Replaces a parameter's storage (e.g. a new memory layout) while keeping its autograd identity.
  at::Tensor t = T(info, 0);
  t.set_data(T(info, 1));
  INPLACE_DONE;
}
OP(zero_) {
  at::Tensor t = T(info, 0);
  t.zero_();
  INPLACE_DONE;
}
OP(fill_) {
  at::Tensor t = T(info, 0);
  t.fill_(Num(info, 1));
  INPLACE_DONE;
}
OP(uniform_) {
  at::Tensor t = T(info, 0);
  t.uniform_(Num(info, 1, 0), Num(info, 2, 1));
  INPLACE_DONE;
}
OP(normal_) {
  at::Tensor t = T(info, 0);
  t.normal_(Num(info, 1, 0), Num(info, 2, 1));
  INPLACE_DONE;
}


// conv2dFused(x, w, b?, stride, padding, dilation, groups, relu, sum?, sumInplace, algorithm, srcBlocked, dstBlocked)
//   = [relu](conv2d(x, w, b) [+ sum]) in one oneDNN primitive (post-ops), float32 on the CPU.
// With sumInplace the result is written into `sum` (the caller guarantees nothing else reads it). algorithm:
// 'direct' (libtorch's choice), 'auto' (oneDNN chooses) or 'winograd'. Activations are NHWC (channels-last
// [N, C, H, W]) or, with src/dstBlocked, oneDNN's nChw16c stored as a plain [N, C/16, H, W, 16] tensor: Winograd
// takes only that layout, and keeping it between convolutions avoids a reorder on either side.
#ifdef DEEPREDUCE_DNNL
struct FusedConvKey {
  const void* w; int64_t wVersion; std::vector<int64_t> x, w_sizes, stride, padding, dilation;
  int64_t groups; bool bias, relu, sum; std::string alg; bool srcBlocked, dstBlocked;
  bool operator<(const FusedConvKey& o) const {
    return std::tie(w, wVersion, x, w_sizes, stride, padding, dilation, groups, bias, relu, sum, alg, srcBlocked, dstBlocked) <
           std::tie(o.w, o.wVersion, o.x, o.w_sizes, o.stride, o.padding, o.dilation, o.groups, o.bias, o.relu, o.sum, o.alg,
                    o.srcBlocked, o.dstBlocked);
  }
};
struct FusedConv {
  at::Tensor w;  // keeps the weights alive, so their address cannot be reused while cached
  dnnl::convolution_forward prim;
  dnnl::memory weights;  // reordered into the primitive's preferred layout once
  dnnl::memory::desc src, bias, dst;
};
struct FusedConvCache {
  std::mutex mu;
  std::list<FusedConvKey> lru;
  std::map<FusedConvKey, std::pair<std::shared_ptr<FusedConv>, std::list<FusedConvKey>::iterator>> map;
  static constexpr size_t kMax = 512;
};
FusedConvCache& ConvCache() {
  static FusedConvCache c;
  return c;
}
dnnl::engine& DnnlEngine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

std::shared_ptr<FusedConv> MakeFusedConv(const FusedConvKey& k, const at::Tensor& w) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto& eng = DnnlEngine();
  const int64_t N = k.x[0], C = k.x[1], H = k.x[2], W = k.x[3], O = k.w_sizes[0], KH = k.w_sizes[2], KW = k.w_sizes[3];
  const int64_t OH = (H + 2 * k.padding[0] - k.dilation[0] * (KH - 1) - 1) / k.stride[0] + 1;
  const int64_t OW = (W + 2 * k.padding[1] - k.dilation[1] * (KW - 1) - 1) / k.stride[1] + 1;
  if (OH < 1 || OW < 1) throw ArgError("output would be empty");
  const int64_t G = k.groups;
  dnnl::memory::desc src({N, C, H, W}, dt::f32, k.srcBlocked ? tag::nChw16c : tag::nhwc);
  dnnl::memory::desc dst({N, O, OH, OW}, dt::f32, k.dstBlocked ? tag::nChw16c : tag::nhwc);
  dnnl::memory::dims wdims = G == 1 ? dnnl::memory::dims{O, C, KH, KW} : dnnl::memory::dims{G, O / G, C / G, KH, KW};
  dnnl::memory::desc wany(wdims, dt::f32, tag::any), wplain(wdims, dt::f32, G == 1 ? tag::oihw : tag::goihw);
  dnnl::memory::desc bias = k.bias ? dnnl::memory::desc({O}, dt::f32, tag::x) : dnnl::memory::desc();
  dnnl::post_ops po;
  if (k.sum) po.append_sum(1.f);
  if (k.relu) po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  dnnl::primitive_attr attr;
  attr.set_post_ops(po);
  // Dilation in oneDNN counts the gaps: 0 is a dense kernel.
  dnnl::memory::dims strides{k.stride[0], k.stride[1]}, dil{k.dilation[0] - 1, k.dilation[1] - 1}, pad{k.padding[0], k.padding[1]};
  auto alg = k.alg == "auto"       ? dnnl::algorithm::convolution_auto
             : k.alg == "winograd" ? dnnl::algorithm::convolution_winograd
                                   : dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, alg, src, wany, bias, dst, strides, dil, pad, pad);
  dnnl::convolution_forward::primitive_desc pd(d, attr, eng);
  auto f = std::make_shared<FusedConv>();
  f->w = w;
  f->prim = dnnl::convolution_forward(pd);
  f->src = src;
  f->dst = dst;
  f->bias = bias;
  f->weights = dnnl::memory(pd.weights_desc(), eng);
  at::Tensor wc = w.contiguous();
  dnnl::memory wsrc(wplain, eng, wc.data_ptr());
  dnnl::stream st(eng);
  dnnl::reorder(wsrc, f->weights).execute(st, wsrc, f->weights);
  st.wait();
  return f;
}

std::shared_ptr<FusedConv> GetFusedConv(const FusedConvKey& k, const at::Tensor& w) {
  auto& c = ConvCache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    auto it = c.map.find(k);
    if (it != c.map.end()) {
      c.lru.splice(c.lru.begin(), c.lru, it->second.second);
      return it->second.first;
    }
  }
  auto f = MakeFusedConv(k, w);
  std::lock_guard<std::mutex> lock(c.mu);
  c.lru.push_front(k);
  c.map[k] = {f, c.lru.begin()};
  while (c.map.size() > FusedConvCache::kMax) {
    c.map.erase(c.lru.back());
    c.lru.pop_back();
  }
  return f;
}
#endif

OP(conv2dFused) {
#ifndef DEEPREDUCE_DNNL
  throw ArgError("this build has no oneDNN (conv2dFused needs the system libtorch and libdnnl-dev)");
#else
  const at::Tensor& x0 = T(info, 0);
  const at::Tensor& w = T(info, 1);
  at::Tensor b = OptT(info, 2);
  FusedConvKey k;
  k.stride = Ints(info, 3);
  k.padding = Ints(info, 4);
  k.dilation = Ints(info, 5);
  k.groups = Int(info, 6, 1);
  k.relu = Bool(info, 7, false);
  at::Tensor sum = OptT(info, 8);
  const bool sumInplace = Bool(info, 9, false);
  k.alg = Str(info, 10, "direct");
  k.srcBlocked = Bool(info, 11, false);
  k.dstBlocked = Bool(info, 12, false);
  if (k.alg != "direct" && k.alg != "auto" && k.alg != "winograd") throw ArgError("algorithm must be 'direct', 'auto' or 'winograd'");
  if (w.dim() != 4) throw ArgError("weight must be 4-D");
  if (k.srcBlocked ? x0.dim() != 5 || x0.size(4) != 16 || !x0.is_contiguous() : x0.dim() != 4)
    throw ArgError(k.srcBlocked ? "a blocked input must be a contiguous [N, C/16, H, W, 16] tensor" : "input must be 4-D");
  if (k.dstBlocked && w.size(0) % 16 != 0) throw ArgError("a blocked output needs output channels divisible by 16");
  if (x0.scalar_type() != at::kFloat || w.scalar_type() != at::kFloat || (b.defined() && b.scalar_type() != at::kFloat))
    throw ArgError("conv2dFused takes float32 tensors");
  if (!x0.device().is_cpu() || !w.device().is_cpu()) throw ArgError("conv2dFused runs on the CPU");
  if (k.stride.size() != 2 || k.padding.size() != 2 || k.dilation.size() != 2) throw ArgError("stride, padding and dilation are pairs");
  const int64_t inC = k.srcBlocked ? x0.size(1) * 16 : x0.size(1);
  if (k.groups < 1 || inC != w.size(1) * k.groups || w.size(0) % k.groups != 0)
    throw ArgError("input channels " + std::to_string(inC) + " do not match weight " + ShapeStr(w) + " with groups " + std::to_string(k.groups));
  if (b.defined() && (b.dim() != 1 || b.size(0) != w.size(0))) throw ArgError("bias must be [" + std::to_string(w.size(0)) + "]");
  at::Tensor x = k.srcBlocked ? x0 : x0.contiguous(at::MemoryFormat::ChannelsLast);
  k.w = w.unsafeGetTensorImpl();
  k.wVersion = w.is_inference() ? 0 : static_cast<int64_t>(w._version());
  k.x = k.srcBlocked ? std::vector<int64_t>{x0.size(0), inC, x0.size(2), x0.size(3)} : x.sizes().vec();
  k.w_sizes = w.sizes().vec();
  k.bias = b.defined();
  k.sum = sum.defined();
  auto f = GetFusedConv(k, w);
  std::vector<int64_t> dd = f->dst.dims();
  const auto outFormat = k.dstBlocked ? at::MemoryFormat::Contiguous : at::MemoryFormat::ChannelsLast;
  if (k.dstBlocked) dd = {dd[0], dd[1] / 16, dd[2], dd[3], 16};
  at::Tensor out;
  if (sum.defined()) {
    if (sum.scalar_type() != at::kFloat || sum.sizes().vec() != dd)
      throw ArgError(std::string("sum must be float32 of the output's shape") + (k.dstBlocked ? " (blocked [N, C/16, H, W, 16])" : ""));
    out = sumInplace && sum.is_contiguous(outFormat) ? sum : sum.clone(outFormat);
  } else {
    out = at::empty(dd, x.options().memory_format(outFormat));
  }
  at::Tensor bc = b.defined() ? b.contiguous() : b;
  auto& eng = DnnlEngine();
  dnnl::memory src(f->src, eng, x.data_ptr()), dst(f->dst, eng, out.data_ptr());
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, f->weights}, {DNNL_ARG_DST, dst}};
  if (bc.defined()) args.emplace(DNNL_ARG_BIAS, dnnl::memory(f->bias, eng, bc.data_ptr()));
  thread_local dnnl::stream st(eng);  // one per thread: creating a stream per call costs
  f->prim.execute(st, args);
  st.wait();
  RET(out);
#endif
}

// The oneDNN version behind conv2dFused, or '' when this build has none.
OP(dnnlVersion) {
#ifndef DEEPREDUCE_DNNL
  return Napi::String::New(info.Env(), "");
#else
  return Napi::String::New(info.Env(), "dnnl " + std::to_string(DNNL_VERSION_MAJOR) + "." + std::to_string(DNNL_VERSION_MINOR) + "." + std::to_string(DNNL_VERSION_PATCH));
#endif
}
// Whether oneDNN has a Winograd convolution on this CPU (its f32 Winograd needs AVX-512).
OP(dnnlHasWinograd) {
#ifndef DEEPREDUCE_DNNL
  return Napi::Boolean::New(info.Env(), false);
#else
  static const bool has = [] {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    try {
      dnnl::memory::desc a({1, 32, 8, 8}, dt::f32, tag::nChw16c), w({32, 32, 3, 3}, dt::f32, tag::any);
      dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd, a, w, a,
                                        {1, 1}, {1, 1}, {1, 1});
      dnnl::convolution_forward::primitive_desc pd(d, DnnlEngine());
      return true;
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return Napi::Boolean::New(info.Env(), has);
#endif
}
OP(clearConvCache) {
#ifdef DEEPREDUCE_DNNL
  auto& c = ConvCache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.map.clear();
  c.lru.clear();
#endif
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Runtime: seeds, RNG state, threads, devices

OP(manualSeed) {
  at::manual_seed(static_cast<uint64_t>(Num(info, 0)));
  return info.Env().Undefined();
}
OP(rngState) {
  auto gen = at::detail::getDefaultCPUGenerator();
  at::Tensor s;
  {
    std::lock_guard<std::mutex> lock(gen.mutex());
    s = gen.get_state();
  }
  RET(s);
}
OP(setRngState) {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(T(info, 0));
  return info.Env().Undefined();
}
OP(setNumThreads) {
  int64_t n = Int(info, 0);
  if (n < 1) throw ArgError("thread count must be >= 1");
  at::set_num_threads(static_cast<int>(n));
  return info.Env().Undefined();
}
OP(getNumThreads) { return Napi::Number::New(info.Env(), at::get_num_threads()); }
OP(cudaAvailable) { return Napi::Boolean::New(info.Env(), at::hasCUDA()); }
OP(mkldnnAvailable) { return Napi::Boolean::New(info.Env(), at::hasMKLDNN()); }
OP(version) { return Napi::String::New(info.Env(), TORCH_VERSION); }
OP(parallelInfo) { return Napi::String::New(info.Env(), at::get_parallel_info()); }

#define EXPORT(name) exports.Set(#name, Napi::Function::New(env, name, #name))

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  // Keep freed activation buffers in the heap instead of returning them to the OS: a training step reallocates the
  // same sizes, and fresh pages fault in slowly (measured: backward 25% slower without this). DEEPREDUCE_MALLOC=0
  // leaves glibc's defaults.
  const char* mal = std::getenv("DEEPREDUCE_MALLOC");
  if (mal == nullptr || std::string(mal) != "0") {
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  }
  Napi::Function cls = TensorWrap::DefineClass(env, "NativeTensor", {});
  TensorWrap::ctor = Napi::Persistent(cls);
  TensorWrap::ctor.SuppressDestruct();
  exports.Set("NativeTensor", cls);

  EXPORT(fromArray); EXPORT(toArray); EXPORT(item); EXPORT(zeros); EXPORT(ones); EXPORT(full); EXPORT(empty);
  EXPORT(randn); EXPORT(rand); EXPORT(randint); EXPORT(randperm); EXPORT(arange);
  EXPORT(shape); EXPORT(dtype); EXPORT(device); EXPORT(numel); EXPORT(requiresGrad); EXPORT(isContiguous);
  EXPORT(dispose); EXPORT(accountExternal); EXPORT(toDtype); EXPORT(toDevice); EXPORT(contiguous); EXPORT(clone); EXPORT(detach);
  EXPORT(add); EXPORT(sub); EXPORT(mul); EXPORT(div); EXPORT(pow); EXPORT(remainder); EXPORT(maximum); EXPORT(minimum);
  EXPORT(eq); EXPORT(ne); EXPORT(lt); EXPORT(le); EXPORT(gt); EXPORT(ge); EXPORT(where);
  EXPORT(neg); EXPORT(exp); EXPORT(log); EXPORT(sqrt); EXPORT(rsqrt); EXPORT(abs); EXPORT(relu); EXPORT(sigmoid);
  EXPORT(tanh); EXPORT(sign); EXPORT(floor); EXPORT(round); EXPORT(reciprocal); EXPORT(square); EXPORT(logicalNot);
  EXPORT(clamp);
  EXPORT(matmul); EXPORT(linear); EXPORT(conv2d); EXPORT(conv2dFused); EXPORT(dnnlVersion); EXPORT(dnnlHasWinograd); EXPORT(clearConvCache); EXPORT(batchNorm); EXPORT(dropout); EXPORT(avgPool2d);
  EXPORT(maxPool2d); EXPORT(adaptiveAvgPool2d);
  EXPORT(reshape); EXPORT(permute); EXPORT(transpose); EXPORT(flatten); EXPORT(squeeze); EXPORT(unsqueeze);
  EXPORT(expand); EXPORT(repeat); EXPORT(cat); EXPORT(stack); EXPORT(slice); EXPORT(select); EXPORT(indexSelect);
  EXPORT(gather); EXPORT(pad); EXPORT(flip); EXPORT(oneHot);
  EXPORT(sum); EXPORT(mean); EXPORT(amax); EXPORT(amin); EXPORT(argmax); EXPORT(variance);
  EXPORT(logSoftmax); EXPORT(softmax); EXPORT(crossEntropy); EXPORT(nllLoss); EXPORT(klDiv); EXPORT(mseLoss);
  EXPORT(setRequiresGrad); EXPORT(backward); EXPORT(grad); EXPORT(setGrad); EXPORT(setGradEnabled);
  EXPORT(isGradEnabled); EXPORT(inferenceModeEnter); EXPORT(inferenceModeExit);
  EXPORT(add_); EXPORT(mul_); EXPORT(addcmul_); EXPORT(addcdiv_); EXPORT(copy_); EXPORT(relu_); EXPORT(setData); EXPORT(zero_); EXPORT(fill_);
  EXPORT(uniform_); EXPORT(normal_);
  EXPORT(manualSeed); EXPORT(rngState); EXPORT(setRngState); EXPORT(setNumThreads); EXPORT(getNumThreads);
  EXPORT(cudaAvailable); EXPORT(mkldnnAvailable); EXPORT(version); EXPORT(parallelInfo);
  return exports;
}

}  // namespace

NODE_API_MODULE(deepreduce_native, Init)
