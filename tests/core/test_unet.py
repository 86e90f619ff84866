import pytest
import torch

from napari_labelfree.core.config import Architecture
from napari_labelfree.core.unet import build_network, count_parameters


def test_paper_network_has_reference_parameter_count():
    # pytorch_fnet's depth-4 / 32-channel 3D U-Net has 23.28 M parameters
    net = build_network(Architecture(depth=4, width=32))
    assert count_parameters(net) == 23_280_769


@pytest.mark.parametrize("depth,width", [(1, 4), (2, 8), (3, 4)])
def test_output_has_input_shape_and_one_channel(depth, width):
    net = build_network(Architecture(depth=depth, width=width)).eval()
    m = 2**depth
    x = torch.randn(2, 1, m * 2, m * 3, m)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (2, 1, m * 2, m * 3, m)


def test_final_layer_has_no_activation():
    # fluorescence is z-scored, so predictions must be able to go negative
    torch.manual_seed(0)
    net = build_network(Architecture(depth=1, width=4)).eval()
    with torch.no_grad():
        y = net(torch.randn(1, 1, 8, 8, 8))
    assert (y < 0).any() and (y > 0).any()


def test_structure_follows_the_paper():
    net = build_network(Architecture(depth=2, width=8))
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    downs = [m for m in convs if m.stride == (2, 2, 2)]
    assert len(downs) == 2 and all(m.kernel_size == (2, 2, 2) for m in downs)
    ups = [m for m in net.modules() if isinstance(m, torch.nn.ConvTranspose3d)]
    assert len(ups) == 2 and all(m.kernel_size == (2, 2, 2) and m.stride == (2, 2, 2) for m in ups)
    assert net.head.out_channels == 1 and net.head.kernel_size == (3, 3, 3)
    # channels double per level: 8 -> 16 -> 32
    assert net.body.below.below.encode.conv1.out_channels == 32
