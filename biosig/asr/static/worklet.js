// AudioWorklet: microphone frames at the context's rate -> 16 kHz signed 16-bit PCM, posted to
// the page in 100 ms pieces. Resampling: a moving-average low-pass over one input period of
// the output rate, then linear interpolation.
class PcmResampler extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / 16000;
    this.pos = 0;            // position of the next output sample, in input samples
    this.prev = 0;
    this.acc = [];
    this.out = new Int16Array(1600);
    this.n = 0;
    this.k = Math.max(1, Math.round(this.ratio));
    this.hist = new Float32Array(this.k);
    this.hi = 0;
    this.sum = 0;
  }
  process(inputs) {
    const ch = inputs[0] && inputs[0][0];
    if (!ch) return true;
    for (let i = 0; i < ch.length; i++) {
      // moving average over k samples (anti-aliasing for the decimation)
      this.sum += ch[i] - this.hist[this.hi];
      this.hist[this.hi] = ch[i];
      this.hi = (this.hi + 1) % this.k;
      const cur = this.sum / this.k;
      while (this.pos <= 1) {
        const v = this.prev + (cur - this.prev) * this.pos;
        const s = Math.max(-1, Math.min(1, v));
        this.out[this.n++] = s < 0 ? s * 32768 : s * 32767;
        if (this.n === this.out.length) {
          this.port.postMessage(this.out.buffer.slice(0));
          this.n = 0;
        }
        this.pos += this.ratio;
      }
      this.pos -= 1;
      this.prev = cur;
    }
    return true;
  }
}
registerProcessor("pcm-resampler", PcmResampler);
