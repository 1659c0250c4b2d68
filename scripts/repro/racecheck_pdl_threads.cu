// Reproducer of a compute-sanitizer racecheck stall that does not involve libmhc (see the
// "Stalls" note in scripts/gpu-sanitizers.sh). Several host threads, each with its own
// non-blocking stream, launch pairs of kernels chained with programmatic dependent launch
// (programmatic stream serialization, as libmhc chains its GEMM and finalize; here on the
// producer too, as with MHC_CONTEXT_FLAG_PDL), then download one float and synchronize
// their stream every iteration, as the threads of tests/hardening/test_gpu_streams.c do.
//
//   nvcc -O2 -arch=sm_90a -std=c++17 -o racecheck_pdl_threads racecheck_pdl_threads.cu
//   ./racecheck_pdl_threads 1 8 60                                    # < 1 s
//   compute-sanitizer --tool racecheck ./racecheck_pdl_threads 1 1 60  # ~6 s
//   compute-sanitizer --tool racecheck ./racecheck_pdl_threads 1 8 60  # did not finish
//
// Arguments: <early 0|1> <threads> <iterations>; early = 1 triggers the dependent launch at the
// producer's start (as libmhc's early-launch table rows do), 0 at its end. Measured on an
// H200 (CUDA 13.0, driver 580.159.04, compute-sanitizer 2025.3.1): without the tool 8 x 60
// finished in under a second; under racecheck 1 thread x 60 took 6 s, while 8 threads x 60
// (early = 1) were killed by a timeout in 4 of 4 runs (three at 30 s, one at 50 s). Those
// runs used a draft of this program with the same kernels and launch sequence. Not built
// by CMake: a diagnostic for the tool, not a test of the library.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

namespace {

constexpr int kThreads = 256;
constexpr int kBlocks = 32;

__global__ void producer(float *out, int early) {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  if (early) asm volatile("griddepcontrol.launch_dependents;");
  __shared__ float s[kThreads];  // shared memory traffic for racecheck to track
  s[threadIdx.x] = threadIdx.x * 0.5f + blockIdx.x;
  __syncthreads();
  float v = 0.0f;
  for (int i = 0; i < kThreads; ++i) v += s[(threadIdx.x + i) % kThreads];
  out[blockIdx.x * kThreads + threadIdx.x] = v;
  __syncthreads();
  if (!early) asm volatile("griddepcontrol.launch_dependents;");
}

__global__ void consumer(const float *in, float *sum, int n) {
  asm volatile("griddepcontrol.wait;" ::: "memory");
  __shared__ float s[kThreads / 32];
  float v = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) v += in[i];
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (threadIdx.x % 32 == 0) s[threadIdx.x / 32] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    float t = 0.0f;
    for (int w = 0; w < kThreads / 32; ++w) t += s[w];
    *sum = t;
  }
}

// One host thread's loop; returns the number of failed CUDA calls.
int run_thread(int early, int iterations) {
  int failures = 0;
  auto check = [&](cudaError_t e) { failures += e != cudaSuccess; };
  const int n = kBlocks * kThreads;
  cudaStream_t stream;
  float *buf, *sum, *host;
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  check(cudaMalloc(&buf, n * sizeof(float)));
  check(cudaMalloc(&sum, sizeof(float)));
  check(cudaMallocHost(&host, sizeof(float)));
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  for (int i = 0; i < iterations; ++i) {
    // both launches carry the attribute (the producer then overlaps the previous consumer)
    cudaLaunchConfig_t first{dim3(kBlocks), dim3(kThreads), 0, stream, &attr, 1};
    check(cudaLaunchKernelEx(&first, producer, buf, early));
    cudaLaunchConfig_t second{dim3(1), dim3(kThreads), 0, stream, &attr, 1};
    check(cudaLaunchKernelEx(&second, consumer, static_cast<const float *>(buf), sum, n));
    check(cudaMemcpyAsync(host, sum, sizeof(float), cudaMemcpyDeviceToHost, stream));
    check(cudaStreamSynchronize(stream));
  }
  check(cudaFreeHost(host));
  check(cudaFree(sum));
  check(cudaFree(buf));
  check(cudaStreamDestroy(stream));
  return failures;
}

}  // namespace

int main(int argc, char **argv) {
  const int early = argc > 1 ? std::atoi(argv[1]) : 1;
  const int n_threads = argc > 2 ? std::atoi(argv[2]) : 8;
  const int iterations = argc > 3 ? std::atoi(argv[3]) : 60;
  std::vector<int> failures(n_threads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < n_threads; ++t)
    threads.emplace_back([&, t] { failures[t] = run_thread(early, iterations); });
  for (auto &t : threads) t.join();
  int total = 0;
  for (int f : failures) total += f;
  std::printf("early=%d threads=%d iterations=%d: %d failed CUDA calls\n", early, n_threads,
              iterations, total);
  return total != 0;
}
