// One layer of a peer's 2PC library, for bench/peers/run.ts: a batch of ReLUs or one convolution, run through the
// library's own entry points (Relu, Conv2DWrapper: the ones its networks call), timed around the call and with the
// bytes this party sent during it (sum of its NetIO counters). Built by bench/peers/build.sh against SCI (EzPC) and
// OpenCheetah; it is our code, linked to theirs, never part of our runtime.
// Usage: driver r=1|2 op=relu|conv [n=1048576] [ell=37] [k=12] [nt=1] [p=32000] [ip=127.0.0.1]
//        conv: [h=14] [ci=256] [co=256] [f=3]
#include "library_fixed.h"
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <time.h>
#include <vector>
#include <string>

int party = 0;
int port = 32000;
std::string address = "127.0.0.1";
int num_threads = 1;
int32_t bitlength = 37;
int32_t kScale = 12;

static double cpuNow() { // this process, all threads
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint64_t sentNow() {
  uint64_t s = 0;
  for (int i = 0; i < num_threads; i++) s += ioArr[i]->counter;
  return s;
}

int main(int argc, char **argv) {
  std::string op = "relu";
  long n = 1L << 20, h = 14, ci = 256, co = 256, f = 3;
  for (int i = 1; i < argc; i++) {
    const char *eq = strchr(argv[i], '=');
    if (!eq) { fprintf(stderr, "bad argument %s (want key=value)\n", argv[i]); return 2; }
    std::string k(argv[i], eq - argv[i]), v(eq + 1);
    if (k == "r") party = atoi(v.c_str());
    else if (k == "p") port = atoi(v.c_str());
    else if (k == "ip") address = v;
    else if (k == "nt") num_threads = atoi(v.c_str());
    else if (k == "ell") bitlength = atoi(v.c_str());
    else if (k == "k") kScale = atoi(v.c_str());
    else if (k == "op") op = v;
    else if (k == "n") n = atol(v.c_str());
    else if (k == "h") h = atol(v.c_str());
    else if (k == "ci") ci = atol(v.c_str());
    else if (k == "co") co = atol(v.c_str());
    else if (k == "f") f = atol(v.c_str());
    else { fprintf(stderr, "unknown key %s\n", k.c_str()); return 2; }
  }
  if ((party != 1 && party != 2) || (op != "relu" && op != "conv") || n < 1 || num_threads < 1 || num_threads > 4) {
    fprintf(stderr, "usage: driver r=1|2 op=relu|conv [n=] [ell=] [k=] [nt=1..4] [p=] [ip=] [h=] [ci=] [co=] [f=]\n");
    return 2;
  }
  // Set-up (base OTs; Cheetah: its silent-OT and HE keys) is outside the measured call.
  auto s0 = std::chrono::steady_clock::now();
  StartComputation();
  double setupS = std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count();
  uint64_t setupSent = sentNow();

  const uint64_t mask = bitlength == 64 ? ~0ULL : (1ULL << bitlength) - 1;
  std::mt19937_64 rng(1234 + party);
  double sec = 0, cpu = 0;
  long wrong = -1; // ReLU outputs that are not ReLU(x) (the server counts them; -1: not checked)
  uint64_t sent = 0;
  if (op == "relu") {
    uint64_t *x = new uint64_t[n], *y = new uint64_t[n];
    for (long i = 0; i < n; i++) x[i] = rng() & mask;
    uint64_t c0 = sentNow();
    double u0 = cpuNow();
    auto t0 = std::chrono::steady_clock::now();
    Relu((int32_t)n, x, y, kScale, /*doTruncation*/ false);
    sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu = cpuNow() - u0;
    sent = sentNow() - c0;
    // Check, after the measurement: the client sends its shares, the server counts outputs that are not ReLU(x).
    if (party == 2) {
      ioArr[0]->send_data(x, n * sizeof(uint64_t));
      ioArr[0]->send_data(y, n * sizeof(uint64_t));
    } else {
      uint64_t *x2 = new uint64_t[n], *y2 = new uint64_t[n];
      ioArr[0]->recv_data(x2, n * sizeof(uint64_t));
      ioArr[0]->recv_data(y2, n * sizeof(uint64_t));
      const uint64_t half = mask / 2 + 1;
      wrong = 0;
      for (long i = 0; i < n; i++) {
        uint64_t v = (x[i] + x2[i]) & mask, want = v >= half ? 0 : v;
        wrong += ((y[i] + y2[i]) & mask) != want;
      }
      delete[] x2;
      delete[] y2;
    }
    delete[] x;
    delete[] y;
  } else {
    // Input shared by both parties (NHWC), filter held by the server (FH, FW, CI, CO); SAME padding, stride 1.
    long in = h * h * ci, fl = f * f * ci * co, out = h * h * co, pad = f / 2;
    uint64_t *x = new uint64_t[in], *w = new uint64_t[fl], *y = new uint64_t[out];
    for (long i = 0; i < in; i++) x[i] = rng() & mask;
    for (long i = 0; i < fl; i++) w[i] = party == 1 ? (rng() % (1ULL << kScale)) : 0;
#if USE_CHEETAH
    // Cheetah's HomConv itself: OpenCheetah's Conv2DWrapper also reveals input, filter and output to the client to
    // check them (VERIFY_LAYERWISE is on in library_fixed_uniform_cheetah.cpp), which is no part of the protocol.
    gemini::CheetahLinear::ConvMeta meta;
    meta.ishape = gemini::TensorShape({ci, h, h});
    meta.fshape = gemini::TensorShape({ci, f, f});
    meta.n_filters = co;
    meta.padding = gemini::Padding::SAME;
    meta.stride = 1;
    meta.is_shared_input = true; // a hidden layer's input: shared by both parties
    std::vector<gemini::Tensor<uint64_t>> filters(co);
    for (long o = 0; o < co; o++) {
      filters[o].Reshape(meta.fshape);
      for (long c = 0; c < ci; c++)
        for (long i = 0; i < f; i++)
          for (long j = 0; j < f; j++) filters[o](c, i, j) = w[((i * f + j) * ci + c) * co + o];
    }
    gemini::Tensor<uint64_t> image(meta.ishape), result;
    for (long c = 0; c < ci; c++)
      for (long i = 0; i < h; i++)
        for (long j = 0; j < h; j++) image(c, i, j) = x[(i * h + j) * ci + c];
    uint64_t c0 = sentNow();
    double u0 = cpuNow();
    auto t0 = std::chrono::steady_clock::now();
    cheetah_linear->conv2d(image, filters, meta, result);
#else
    uint64_t c0 = sentNow();
    double u0 = cpuNow();
    auto t0 = std::chrono::steady_clock::now();
    Conv2DWrapper(1, h, h, ci, f, f, co, pad, pad, pad, pad, 1, 1, x, w, y);
#endif
    sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    cpu = cpuNow() - u0;
    sent = sentNow() - c0;
    delete[] x;
    delete[] w;
    delete[] y;
  }
  // Drain: each party's last writes may still sit in its buffers; a round trip on channel 0 ends both together.
  for (int i = 0; i < num_threads; i++) ioArr[i]->flush();
  uint64_t token = 1;
  if (party == 1) {
    ioArr[0]->send_data(&token, sizeof token);
    ioArr[0]->flush();
    ioArr[0]->recv_data(&token, sizeof token);
  } else {
    ioArr[0]->recv_data(&token, sizeof token);
    ioArr[0]->send_data(&token, sizeof token);
    ioArr[0]->flush();
  }
  // One machine-readable line; run.ts adds both parties' sent bytes.
  printf("PEER_RESULT op=%s party=%d n=%ld ell=%d nt=%d seconds=%.6f cpu_seconds=%.6f sent=%llu setup_seconds=%.6f setup_sent=%llu wrong=%ld\n",
         op.c_str(), party, n, bitlength, num_threads, sec, cpu, (unsigned long long)sent, setupS,
         (unsigned long long)setupSent, wrong);
  fflush(stdout);
  return 0;
}
