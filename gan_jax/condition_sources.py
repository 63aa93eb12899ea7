"""The training source of a conditioned GAN: each example with its condition kinds' values
(gan_jax/conditions.py's Table), and a subset of a source's examples."""

from gan_jax import conditions
from gan_jax import data


class ConditionedSource:
  """A data source whose examples also carry each condition kind's values under its name
  (standardised attributes and features, a plug-in kind's rows)."""

  def __init__(self, source, table: conditions.Table):
    if len(source) != len(table.labels):
      raise ValueError(f'{len(source)} examples but {len(table.labels)} condition rows')
    self.source, self.table = source, table
    self.image_shape, self.num_classes = source.image_shape, source.num_classes
    self._rows = table.training_rows()

  def __len__(self):
    return len(self.source)

  def __getitem__(self, index):
    example = dict(self.source[index])
    for name, rows in self._rows.items():
      example[name] = rows[index]
    if self.table.has_text:  # All captions of the digit; the train step picks one.
      text = self.table.text
      example.update(text=text.ids[index], named=text.named[index], codes=text.codes[index])
    return example


Subset = data.Subset  # The examples `indices` of a data source, in that order.
