// Throughput of the ImageNet-style input pipeline on the CPU, by number of loader workers: JPEG decoding
// (libjpeg-turbo), random-resized-crop to 224², flip, to_float and normalise, collated into batches.
//
// It writes `images` JPEGs of 500x375 (ImageNet's typical size; smooth random content, quality 90) into a
// temporary image folder, then times one epoch of a DataLoader for each worker count. Workers are threads
// that each decode whole batches (data/loader.h), so with W workers on >= W free cores the rate should grow
// about W-fold; the printed speed-up against 0 workers checks that decoding really runs in parallel.
//
// Usage: bench_resnet_pipeline [images=256] [batch=32] [max_workers=hardware threads]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "data/data.h"
#include "nabla.h"

using namespace nabla;

int main(int argc, char** argv) {
  const int64_t images = argc > 1 ? std::atoll(argv[1]) : 256;
  const int64_t batch = argc > 2 ? std::atoll(argv[2]) : 32;
  const int max_workers =
      argc > 3 ? std::atoi(argv[3]) : static_cast<int>(std::thread::hardware_concurrency());
  namespace fs = std::filesystem;
  const fs::path root = fs::temp_directory_path() / ("nabla_pipeline_bench_" + std::to_string(::getpid()));
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  {
    // Smooth content (a low-resolution random image resized up) compresses like photographs do; pure noise
    // would make decoding slower than real data.
    Generator g{1, 0};
    for (int64_t i = 0; i < images; ++i) {
      Tensor small = randint(0, 256, {24, 32, 3}, {.dtype = DType::u8}, &g);
      Tensor img = data::resize_image(small, 375, 500);
      data::write_jpeg((root / (i % 2 ? "a" : "b") / (std::to_string(i) + ".jpg")).string(), img, 90);
    }
  }
  auto set = std::make_shared<data::ImageFolder>(root.string());
  auto transform =
      data::compose({data::random_resized_crop(224, 224), data::random_horizontal_flip(), data::to_float(),
                     data::normalize({0.485, 0.456, 0.406}, {0.229, 0.224, 0.225})});
  std::printf("%lld JPEGs of 500x375, batch %lld, random-resized-crop 224 + flip + normalise\n",
              static_cast<long long>(images), static_cast<long long>(batch));
  double base = 0;
  for (int workers = 0; workers <= max_workers; workers = workers == 0 ? 1 : workers * 2) {
    data::DataLoader loader(set, {.batch_size = batch, .shuffle = true, .seed = 1, .num_workers = workers},
                            transform);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t n = 0;
    while (auto b = loader.next()) n += b->labels.numel();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rate = static_cast<double>(n) / s;
    if (workers == 0) base = rate;
    std::printf("workers %2d: %8.1f images/s  (%.2fx of 0 workers)\n", workers, rate, rate / base);
    std::fflush(stdout);
  }
  fs::remove_all(root);
  return 0;
}
