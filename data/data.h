// nabla::data: dataset readers, image decoding, transforms and the DataLoader, in one include.
#pragma once
#include "data/cifar.h"
#include "data/device_loader.h"
#include "data/dataset.h"
#include "data/idx.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "data/transforms.h"
