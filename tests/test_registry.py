import pytest
import torch

import callbacks
import datasets
import losses
import models
import utils


@pytest.fixture
def registry():
    reg = utils.Registry('widgets')

    @reg.register('box')
    class Box:
        def __init__(self, size, color='red', weight=1.0):
            self.size, self.color, self.weight = size, color, weight

    return reg


def test_make_merges_runtime_args_over_a_copy_of_the_spec(registry):
    spec = {'name': 'box', 'args': {'size': 2, 'color': 'blue'}}
    box = registry.make(spec, args={'color': 'green'})
    assert (box.size, box.color) == (2, 'green')
    assert spec == {'name': 'box', 'args': {'size': 2, 'color': 'blue'}}


def test_args_are_optional_and_deep_copied(registry):
    registry.register('bag')(lambda items=(): {'items': items})
    spec = {'name': 'bag', 'args': {'items': [1, 2]}}
    bag = registry.make(spec)
    bag['items'].append(3)
    assert spec['args']['items'] == [1, 2]
    assert registry.make({'name': 'bag'}) == {'items': ()}


def test_list_is_sorted_and_filters(registry):
    registry.register('ant')(dict)
    assert registry.list() == ['ant', 'box']
    assert registry.list('b*') == ['box']
    assert models.list() == sorted(models.list()) and 'resnet18' in models.list()
    assert models.list('resnet*') == ['resnet18', 'resnet34', 'resnet50']


def test_dotted_names_import():
    assert isinstance(losses.make({'name': 'torch.nn.CrossEntropyLoss'}), torch.nn.CrossEntropyLoss)
    net = models.make({'name': 'torchvision.models.resnet18', 'args': {'num_classes': 3}})
    assert net.fc.out_features == 3
    early = callbacks.make({'name': 'pytorch_lightning.callbacks.EarlyStopping',
                            'args': {'monitor': 'val/loss'}})
    assert type(early).__name__ == 'EarlyStopping'


def test_unknown_name_lists_close_matches_and_the_names():
    with pytest.raises(utils.ConfigError,  # a near name: the count of the others
                       match=r"unknown models name 'resnet81'; did you mean 'resnet18' or "
                             rf"'resnet50' or 'resnet34'\? \({len(models.list())} known\)"):
        models.make({'name': 'resnet81'})
    with pytest.raises(utils.ConfigError,  # no near name: every name, up to a line's length
                       match=r"unknown models name 'transformer' \(known: airbench, convnet, "
                             r"dcgan_discriminator, dcgan_generator, gpt, lenet5, mlp, resnet18, "
                             r"resnet34, resnet50\)"):
        models.make({'name': 'transformer'})


def test_bad_dotted_name_is_a_config_error():
    with pytest.raises(utils.ConfigError, match="'torch.nn' has no attribute 'CrossEntropy'"):
        losses.make({'name': 'torch.nn.CrossEntropy'})
    with pytest.raises(utils.ConfigError, match="cannot import 'nosuchpkg.Thing'"):
        losses.make({'name': 'nosuchpkg.Thing'})


def test_duplicate_registration_says_where_the_first_one_is(registry):
    with pytest.raises(ValueError, match=r"widgets name 'box' is already registered by "
                                         r".*Box \(.*test_registry.py:\d+\)"):
        registry.register('box')(dict)


def test_argument_errors_name_the_argument():
    with pytest.raises(utils.ConfigError, match=r"args.hiden: unknown argument 'hiden' for "
                                                r"models 'mlp'; did you mean 'hidden'\?"):
        models.make({'name': 'mlp', 'args': {'hiden': [3]}})
    with pytest.raises(utils.ConfigError, match=r"args.batch_size: must be an integer >= 1, but got 'x'"):
        datasets.make({'name': 'digits', 'args': {'batch_size': 'x'}})  # a parent's argument
    with pytest.raises(utils.ConfigError, match="widgets 'box' needs argument 'size'"):
        reg = utils.Registry('widgets')
        reg.register('box')(lambda size: size)
        reg.make({'name': 'box'})


def test_spec_shape_errors(registry):
    with pytest.raises(utils.ConfigError, match=r"must be a widgets spec \{name"):
        registry.make({'args': {}})
    with pytest.raises(utils.ConfigError, match=r"^args: must be a mapping, but got \[1\]"):
        registry.make({'name': 'box', 'args': [1]})


def test_every_folder_registers_its_modules():
    assert {'digits', 'mnist'} <= set(datasets.list())
    assert {'cross_entropy', 'mnist_ce'} <= set(losses.list())
    assert 'eta' in callbacks.list()
    assert 'base' in models.wrappers.list()


def test_quick_type_checks_agree_with_pydantic_strict_json():
    """Arguments of the scalar types are checked without pydantic (its validators take a tenth
    of a second each to build, in every run's start-up): the answer is pydantic's own."""
    import json
    import typing

    from pydantic import TypeAdapter, ValidationError

    from utils import types
    annotations = [int, float, bool, str, type(None), typing.Optional[int], int | None,
                   typing.Union[int, float, str, None], typing.Literal['min', 'max'],
                   typing.Literal[1, 2], typing.Optional[typing.Literal['norm', 'value']],
                   bool | str, float | None]
    values = [0, 1, 2, -3, 1.0, 1.5, float('inf'), True, False, 'a', 'min', 'norm', '1', None,
              [1], {'a': 1}]
    for annotation in annotations:
        for value in values:
            try:
                TypeAdapter(annotation).validate_json(json.dumps(value), strict=True)
                expected = True
            except ValidationError:
                expected = False
            assert types._scalar_fits(annotation, value) is not None, annotation
            assert types.fits(annotation, value) == expected, (annotation, value)
    assert types._scalar_fits(list[int], [1]) is None  # left to pydantic
