using System.Numerics;
using System.Runtime.InteropServices;
using System.Text.Json;
using TorchSharp;
using WinTok.Checkpoints;
using static TorchSharp.torch;

namespace WinTok.Tests.Checkpoints;

/// <summary>
/// A small training checkpoint in the reference layout that exercises every part of the writer: all storage dtypes,
/// a non-contiguous view, a scalar, an empty tensor, a tensor stored under two names, both optimizers and args of
/// every value kind. <see cref="WriteExpectation"/> records what tests/fixtures-tools/check_written_checkpoint.py
/// must find after torch.load.
/// </summary>
internal sealed class TrainingCheckpointSample : IDisposable
{
    private readonly DisposeScope scope = NewDisposeScope();

    public TrainingCheckpointSample()
    {
        var weight = (arange(12, ScalarType.Float32) * 0.5 - 1).reshape(4, 3);
        Model = new OrderedDictionary<string, Tensor>
        {
            ["encoder.weight"] = weight,
            ["encoder.bias"] = tensor(new[] { 0.25f, -0.5f, 1e-7f, 3e4f }),
            // A transposed view: written as its contiguous copy.
            ["decoder.weight"] = (arange(12, ScalarType.Float32) - 6).reshape(3, 4).t(),
            ["norm.weight"] = tensor(new[] { 1.5f, -2f, 0.25f, 3f, 96f, -0.0078125f }).to(ScalarType.BFloat16),
            ["norm.bias"] = tensor(new[] { 0.5f, -1.25f, 65504f, 6.103515625e-05f }).to(ScalarType.Float16).reshape(2, 2),
            ["logit_scale"] = tensor(4.6052f),
            ["quantizer.codes"] = tensor(new[] { -(1L << 62), 7L, 1L << 40 }),
            ["quantizer.counts"] = tensor(new[] { int.MinValue, int.MaxValue }),
            ["quantizer.mask"] = tensor(new[] { true, false, true, true }).reshape(2, 2),
            ["quantizer.bytes"] = tensor(new byte[] { 0, 200, 255 }),
            ["empty"] = zeros(0, 3),
            // The same tensor object under a second name, as tied weights are: one storage in the file.
            ["decoder.tied_weight"] = weight,
        };
        Discriminator = new OrderedDictionary<string, Tensor> { ["head.weight"] = tensor(new[] { 9f, -9f }) };
        Args = new OrderedDictionary<string, object?>
        {
            ["model"] = "/mnt/models/siglip2-so400m-patch16-256",
            ["dtype"] = ScalarType.BFloat16,
            ["num_latent_tokens"] = 4,
            ["vocab_size"] = 32768L,
            ["lr"] = 1e-4,
            ["bf16"] = true,
            ["val_data"] = null,
            ["optim_betas"] = (0.9, 0.95),
            ["sizes"] = new[] { 1, 2, 3 },
            ["nested"] = new Dictionary<string, object?> { ["a"] = 1, ["b"] = new object?[] { null, "x" } },
            ["seed_space"] = 1L << 40,
            ["huge"] = BigInteger.Pow(2, 70),
            ["negative"] = -100000,
            ["negative_wide"] = -(1L << 40),
            ["blob"] = new byte[] { 0, 1, 2, 255 },
            ["unicode"] = "päth→ø",
        };
        var step = tensor(12f);   // shared by two parameters: one storage
        ModelOptimizer = new AdamWState(
            new Dictionary<int, AdamWParamState>
            {
                [0] = new(step, full(4, 3, 0.125f), full(4, 3, 0.0625f)),
                [1] = new(step, full(4, -0.5f), full(4, 0.25f)),
                [2] = new(tensor(3f), ones(6).to(ScalarType.BFloat16), zeros(6).to(ScalarType.BFloat16)),
            },
            [
                new AdamWParamGroup([0]) { Lr = 1e-4, Beta1 = 0.9, Beta2 = 0.95, WeightDecay = 0.05, Extra = new Dictionary<string, object?> { ["init_lr"] = 1e-4 } },
                new AdamWParamGroup([1, 2]) { Lr = 1e-4, Beta1 = 0.9, Beta2 = 0.95, WeightDecay = 0, Fused = true },
            ]);
        DiscriminatorOptimizer = new AdamWState(
            new Dictionary<int, AdamWParamState> { [0] = new(tensor(5f), full(2, 0.5f), full(2, 2f)) },
            [new AdamWParamGroup([0]) { Lr = 2e-4, Beta1 = 0.5, Beta2 = 0.9 }]);
        Checkpoint = new TrainingCheckpoint(Args, Model)
        {
            Epoch = 3,
            Iteration = 1234,
            TrainerConfig = new Dictionary<string, object?> { ["dcrit"] = "hinge", ["wei_l1"] = 0.2, ["wei_disc"] = 0.6 },
            Discriminator = Discriminator,
            ModelOptimizer = ModelOptimizer,
            DiscriminatorOptimizer = DiscriminatorOptimizer,
        };
    }

    public OrderedDictionary<string, Tensor> Model { get; }

    public OrderedDictionary<string, Tensor> Discriminator { get; }

    public OrderedDictionary<string, object?> Args { get; }

    public AdamWState ModelOptimizer { get; }

    public AdamWState DiscriminatorOptimizer { get; }

    public TrainingCheckpoint Checkpoint { get; }

    /// <summary>How many distinct storages the file must hold: every tensor object once.</summary>
    public int DistinctTensorCount =>
        Model.Values.Concat(Discriminator.Values)
            .Concat(new[] { ModelOptimizer, DiscriminatorOptimizer }.SelectMany(state => state.State.Values)
                .SelectMany(moments => new[] { moments.Step, moments.ExpAvg, moments.ExpAvgSq }))
            .Distinct(ReferenceEqualityComparer.Instance)
            .Count();

    /// <summary>Writes the tensors' dtypes, shapes and values (as doubles) for the Python check script.</summary>
    public void WriteExpectation(string path)
    {
        static object Describe(Tensor tensor)
        {
            using var values = tensor.to(ScalarType.Float64).contiguous();
            return new
            {
                dtype = tensor.dtype.ToString(),
                shape = tensor.shape,
                values = MemoryMarshal.Cast<byte, double>(values.bytes).ToArray(),
            };
        }
        var expectation = new
        {
            unitok = Model.ToDictionary(pair => pair.Key, pair => Describe(pair.Value)),
            disc = Discriminator.ToDictionary(pair => pair.Key, pair => Describe(pair.Value)),
            tied = new[] { "encoder.weight", "decoder.tied_weight" },
            epoch = Checkpoint.Epoch,
            iter = Checkpoint.Iteration,
        };
        File.WriteAllText(path, JsonSerializer.Serialize(expectation));
    }

    public void Dispose() => scope.Dispose();
}
