import pytest

import utils


@pytest.fixture
def cfg():
    return {'trainer_params': {'max_epochs': 5},
            'train_wrapper': {'args': {'optim_spec': {'name': 'Adam', 'args': {'lr': 0.1}}}},
            'callbacks': [{'name': 'eta'}]}


def test_overrides_set_nested_values_parsed_as_yaml(cfg):
    utils.apply_overrides(cfg, ['trainer_params.max_epochs=3',
                                'train_wrapper.args.optim_spec.args.lr=1e-2',
                                'callbacks.0.name=lr_monitor'])
    assert cfg['trainer_params']['max_epochs'] == 3
    assert cfg['train_wrapper']['args']['optim_spec']['args']['lr'] == 0.01
    assert cfg['callbacks'][0]['name'] == 'lr_monitor'


def test_plus_adds_and_tilde_deletes(cfg):
    utils.apply_overrides(cfg, ['+trainer_params.limit_train_batches=4',
                                '+train_wrapper.args.sched_spec.name=StepLR', '~callbacks'])
    assert cfg['trainer_params']['limit_train_batches'] == 4
    assert cfg['train_wrapper']['args']['sched_spec'] == {'name': 'StepLR'}
    assert 'callbacks' not in cfg


@pytest.mark.parametrize('override, message', [
    ('trainer_params.max_epoch=3', r"no key 'max_epoch' under 'trainer_params'; did you mean "
                                   r"'max_epochs'\? \(use \+KEY=VALUE to add a new key\)"),
    ('trainer_params.max_epochs', r'must look like KEY=VALUE'),
    ('callbacks.3.name=x', r"'callbacks' is a list of 1, '3' is not an index in it"),
    ('trainer_params.max_epochs.x=1', r"'trainer_params.max_epochs' is 5, not a mapping"),
    ('~trainer_params.nope', r"no key 'nope' under 'trainer_params'"),
])
def test_bad_overrides_are_config_errors(cfg, override, message):
    with pytest.raises(utils.ConfigError, match=message):
        utils.apply_overrides(cfg, [override])


def test_yaml_reads_exponent_floats_and_reports_the_line(tmp_path):
    good = tmp_path / 'good.yaml'
    good.write_text('data_module: {name: digits}\ntrain_wrapper: {name: base}\nlr: 3e-4\n'
                    'n: 10\nname: 1e\n')
    loaded = utils.load_yaml(good)
    assert loaded['lr'] == 3e-4 and loaded['n'] == 10 and loaded['name'] == '1e'
    bad = tmp_path / 'bad.yaml'
    bad.write_text('data_module:\n  name: digits\n   args: [\n')
    with pytest.raises(utils.ConfigError, match=r'bad.yaml:3: invalid YAML'):
        utils.load_yaml(bad)


@pytest.mark.parametrize('text, message', [
    ('train_wrapper: {name: base}', r'data_module: required section is missing'),
    ('data_module: {name: digits}\ntrain_wrapper: {name: base}\ntrainer_param: {}',
     r"trainer_param: unknown section; did you mean 'trainer_params' or 'train_wrapper'\? "
     r"\(known: data_module, train_wrapper, trainer_params, checkpoint, callbacks, seed, test\)"),
    ('data_module: {name: digits}\ntrain_wrapper: {name: base}\nseed: abc',
     r"seed: must be an integer, but got 'abc'"),
    ('- 1', r'must be a mapping at the top level'),
])
def test_config_schema_errors_name_file_and_key(tmp_path, text, message):
    path = tmp_path / 'c.yaml'
    path.write_text(text)
    with pytest.raises(utils.ConfigError, match=message) as info:
        utils.load_config(path)
    assert str(info.value).startswith(str(path))
