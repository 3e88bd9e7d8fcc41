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
     r"\(known: data_module, train_wrapper, trainer_params, checkpoint, callbacks, loggers, seed, "
     r"test, search\)"),
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


def write(folder, name, text):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


BASE = '''data_module: {name: digits, args: {batch_size: 64}}
train_wrapper:
  name: base
  args:
    model_spec: {name: mlp, args: {hidden: [256], num_classes: 10}}
    optim_spec: {name: Adam, args: {lr: 0.01}}
    sched_spec: {name: CosineAnnealingLR, args: {T_max: '${trainer_params.max_epochs}'}}
trainer_params: {max_epochs: 20}
'''


def test_base_merges_deeply_and_the_including_file_wins(tmp_path):
    write(tmp_path, 'base/common.yaml', BASE)
    write(tmp_path, 'base/long.yaml', 'trainer_params: {max_epochs: 50, log_every_n_steps: 5}\n')
    child = write(tmp_path, 'exp/child.yaml', '''_base_: [../base/common.yaml, ../base/long.yaml]
train_wrapper:
  args:
    model_spec: {args: {hidden: [64, 64]}}
    sched_spec:
      _delete_: true
      name: StepLR
      args: {step_size: 5}
trainer_params: {log_every_n_steps: 1}
''')
    cfg = utils.load_config(child)
    args = cfg['train_wrapper']['args']
    assert args['model_spec'] == {'name': 'mlp', 'args': {'hidden': [64, 64], 'num_classes': 10}}
    assert args['sched_spec'] == {'name': 'StepLR', 'args': {'step_size': 5}}  # no T_max left
    assert args['optim_spec']['args']['lr'] == 0.01
    assert cfg['trainer_params'] == {'max_epochs': 50, 'log_every_n_steps': 1}  # later base wins
    assert '_base_' not in cfg


def test_interpolation_sees_overrides_and_yields_plain_types(tmp_path):
    path = write(tmp_path, 'c.yaml', BASE)
    cfg = utils.load_config(path, ['trainer_params.max_epochs=7',
                                   'train_wrapper.args.model_spec.args.hidden.0=32'])
    assert cfg['train_wrapper']['args']['sched_spec']['args']['T_max'] == 7
    assert cfg['train_wrapper']['args']['model_spec']['args']['hidden'] == [32]
    assert type(cfg) is dict and type(cfg['train_wrapper']['args']['model_spec']['args']['hidden']) is list


# (config, what OmegaConf makes of it): utils.config resolves plain `${a.b}` references itself
# and must agree with OmegaConf; everything else goes to OmegaConf
REFERENCES = [
    {'a': 3, 'b': '${a}'},
    {'a': {'x': [1, 2, {'y': 'z'}]}, 'b': '${a.x.2.y}', 'c': '${a.x}', 'd': 'n${a.x.0}-${a.x.2.y}'},
    {'t': {'e': 20}, 's': {'T': '${t.e}', 'r': '${run.total_steps}', 'q': 'w ${run.total_steps} ${t.e}'}},
    {'a': '${b}', 'b': '${c}', 'c': 1.5, 'd': None, 'e': '${d}', 'f': True, 'g': '${f}'},
    {'a': [1, '${b}'], 'b': {'k': 'v', 'n': '${a.0}'}},
    {'a': 1.5, 'b': 'x${a}', 'c': 'x${d}', 'd': None},  # text of a float or None: OmegaConf's
    {'a': '${oc.env:HOME}', 'b': 'at ${oc.env:HOME}'},
    {'a': '${.b}', 'b': 1, 'c': {'d': 1, 'e': '${.d}'}},
    {'a': '\\${b}', 'b': 1},
    {'a': '${b.${c}}', 'b': {'x': 1}, 'c': 'x'},  # nested
]


@pytest.mark.parametrize('case', REFERENCES)
def test_references_resolve_as_omegaconf_resolves_them(case):
    from omegaconf import OmegaConf
    escaped = utils.config._map_strings(
        case, lambda s: utils.config.RUN_VALUE.sub(lambda m: '\\' + m.group(0), s))
    expected = OmegaConf.to_container(OmegaConf.create(escaped), resolve=True)
    assert utils.config.interpolate(case) == expected


@pytest.mark.parametrize('case, message', [
    ({'a': '${b.c}', 'b': {}}, 'cannot resolve: .*b.c'),
    ({'a': '${a}'}, 'cannot resolve: Recursive'),
    ({'a': {'b': '${a.c}', 'c': '${a.b}'}}, 'cannot resolve'),
])
def test_a_reference_that_cannot_resolve_is_a_config_error(case, message):
    with pytest.raises(utils.ConfigError, match=message):
        utils.config.interpolate(case)


def test_a_config_of_plain_references_loads_without_omegaconf():
    import subprocess
    import sys
    code = ("import sys, utils; cfg = utils.load_config('configs/digits.yaml', []); "
            "assert cfg['train_wrapper']['args']['sched_spec']['args']['T_max'] == 20; "
            "print('omegaconf' in sys.modules)")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == 'False'


def test_provenance_names_the_file_line_and_what_was_replaced(tmp_path):
    write(tmp_path, 'base.yaml', BASE)
    child = write(tmp_path, 'child.yaml', '_base_: base.yaml\ntrainer_params:\n  max_epochs: 30\n')
    provenance = utils.Provenance()
    cfg = utils.load_config(child, ['trainer_params.max_epochs=40'], seed=3, provenance=provenance)
    base, child = utils.config.shown(tmp_path / 'base.yaml'), utils.config.shown(child)
    assert provenance.explain(cfg, 'trainer_params.max_epochs') == [
        'trainer_params.max_epochs: 40',
        "  set by override 'trainer_params.max_epochs=40'",
        f'  replacing 30 from {child}:3',
        f'  replacing 20 from {base}:8']
    assert provenance.explain(cfg, 'train_wrapper.args.sched_spec.args.T_max') == [
        'train_wrapper.args.sched_spec.args.T_max: 40',
        f'  set by {base}:7 as ${{trainer_params.max_epochs}}']
    assert provenance.explain(cfg, 'seed') == ['seed: 3', '  set by --seed']
    with pytest.raises(utils.ConfigError, match=r"did you mean 'trainer_params.max_epochs'"):
        provenance.explain(cfg, 'trainer_params.max_epoch')


def test_provenance_of_a_deleted_mapping(tmp_path):
    write(tmp_path, 'base.yaml', BASE)
    child = write(tmp_path, 'child.yaml', '_base_: base.yaml\ntrain_wrapper:\n  args:\n'
                                          '    sched_spec:\n      _delete_: true\n'
                                          '      name: StepLR\n')
    provenance = utils.Provenance()
    cfg = utils.load_config(child, ['~train_wrapper.args.optim_spec.args.lr'],
                            provenance=provenance)
    child = utils.config.shown(child)
    lines = provenance.explain(cfg, 'train_wrapper.args.sched_spec')
    assert 'train_wrapper.args.sched_spec.args.T_max: (deleted)' in lines
    assert f'  deleted by {child}:5 (_delete_)' in lines
    assert provenance.explain(cfg, 'train_wrapper.args.optim_spec.args.lr')[:2] == [
        'train_wrapper.args.optim_spec.args.lr: (deleted)',
        "  deleted by override '~train_wrapper.args.optim_spec.args.lr'"]


def test_a_file_included_twice_is_not_a_cycle(tmp_path):
    write(tmp_path, 'base.yaml', BASE)
    write(tmp_path, 'a.yaml', '_base_: base.yaml\nseed: 1\n')
    write(tmp_path, 'b.yaml', '_base_: base.yaml\ntest: false\n')
    cfg = utils.load_config(write(tmp_path, 'top.yaml', '_base_: [a.yaml, b.yaml]\n'))
    assert cfg['seed'] == 1 and cfg['test'] is False
