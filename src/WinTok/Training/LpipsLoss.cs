using WinTok.Evaluation;
using static TorchSharp.torch;

namespace WinTok.Training;

/// <summary>
/// The reference's training LPIPS term (models/modules/lpips.py): the batch mean of <see cref="Lpips"/>'s per-image
/// distances, which is the reference's per-layer batch-and-space mean summed over layers. The LPIPS network runs in
/// its own dtype: keep it float32, or convert the frozen network to bfloat16 for bf16 training, which is what
/// autocast does to its convolutions (the channel normalisation then also runs in bf16, where autocast would use
/// float32 sums). The loss is returned in float32.
/// </summary>
public sealed class LpipsLoss(Lpips lpips) : IPerceptualLoss
{
    public Tensor Loss(Tensor images, Tensor reconstructions)
    {
        using var scope = NewDisposeScope();
        var dtype = lpips.parameters().First().dtype;
        return lpips.call(images.to(dtype), reconstructions.to(dtype)).to(ScalarType.Float32).mean().MoveToOuterDisposeScope();
    }
}
