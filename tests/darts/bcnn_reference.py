"""A plain-PyTorch port of the BCNN and DARTS evaluation networks, written from the brief (§3.3) to
cross-check models/bcnn.cpp: parameter counts (tests/darts/test_darts_models.cpp) and layer layout.

    /usr/bin/python3 tests/darts/bcnn_reference.py      # prints the counts the C++ test expects
"""
import torch
import torch.nn as nn

V1 = dict(normal=[('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('avg_pool_3x3', 2),
                  ('sep_conv_5x5', 1), ('sep_conv_3x3', 3), ('sep_conv_3x3', 1), ('dil_conv_3x3', 2)],
          reduce=[('avg_pool_3x3', 0), ('dil_conv_3x3', 1), ('avg_pool_3x3', 0), ('avg_pool_3x3', 2),
                  ('avg_pool_3x3', 2), ('avg_pool_3x3', 3), ('avg_pool_3x3', 2), ('max_pool_3x3', 1)])
DARTS_V2 = dict(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1),
                        ('sep_conv_3x3', 1), ('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)],
                reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1),
                        ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), ('max_pool_3x3', 1)])


def rcb(ci, co):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(ci, co, 1, bias=False), nn.BatchNorm2d(co))


def dil(ci, co, k, s, p, d):
    return nn.Sequential(nn.ReLU(), nn.Conv2d(ci, ci, k, s, p, d, groups=ci, bias=False),
                         nn.Conv2d(ci, co, 1, bias=False), nn.BatchNorm2d(co))


class FR(nn.Module):
    def __init__(self, ci, co):
        super().__init__()
        self.a = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
        self.b = nn.Conv2d(ci, co // 2, 1, 2, bias=False)
        self.bn = nn.BatchNorm2d(co)

    def forward(self, x):
        x = torch.relu(x)
        return self.bn(torch.cat([self.a(x), self.b(x[:, :, 1:, 1:])], 1))


def op(name, c, s):
    if name == 'skip_connect':
        return nn.Identity() if s == 1 else FR(c, c)
    if name == 'max_pool_3x3':
        return nn.MaxPool2d(3, s, 1)
    if name == 'avg_pool_3x3':
        return nn.AvgPool2d(3, s, 1, count_include_pad=False)
    k = int(name[-1])
    if name.startswith('sep'):
        return nn.Sequential(dil(c, c, k, s, k // 2, 1), dil(c, c, k, 1, k // 2, 1))
    return dil(c, c, k, s, k - 1, 2)


class Cell(nn.Module):
    def __init__(self, genes, cpp, cp, c, red, red_prev):
        super().__init__()
        self.pre0 = FR(cpp, c) if red_prev else rcb(cpp, c)
        self.pre1 = rcb(cp, c)
        self.genes = genes
        self.ops = nn.ModuleList(op(n, c, 2 if red and i < 2 else 1) for n, i in genes)

    def forward(self, s0, s1):
        st = [self.pre0(s0), self.pre1(s1)]
        for j in range(len(self.genes) // 2):
            st.append(sum(self.ops[2 * j + k](st[self.genes[2 * j + k][1]]) for k in range(2)))
        return torch.cat(st[2:], 1)


class BcnnEval(nn.Module):
    def __init__(self, g, C=48, layers=6, en_layers=2, in_ch=3, classes=10):
        super().__init__()
        pools = [layers // 2 - 1, layers - 1]
        self.pools = pools
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        cpp = cp = 3 * C
        c = C
        self.cells, self.gap_ke, self.gap_fr, self.en_ke, self.en_fr, self.en_cells, self.out_ke = (
            nn.ModuleList() for _ in range(7))
        cg, ce, rp = [], [], False
        for i in range(layers):
            red = i in pools
            if red:
                c *= 2
            self.cells.append(Cell(g['normal'], cpp, cp, c, red, rp))
            if i + 1 in pools:
                self.gap_ke.append(rcb(4 * c, c))
                cg.append(c)
                for t in range(len(cg) - 1):
                    self.gap_fr.append(FR(cg[t], cg[t]))
            rp = red
            cpp, cp = cp, 4 * c
            if red:
                co = 4 * c if i == pools[-1] else c
                ce.append(co)
                self.en_ke.append(rcb(cp, co))
                for t in range(len(ce) - 1):
                    self.en_fr.append(FR(ce[t], ce[t]))
            if i + 1 == layers:
                for x in cg:
                    self.gap_fr.append(FR(x, x))
        for j in range(en_layers):
            self.en_cells.append(Cell(g['reduce'], ce[0] if j == 0 else cpp, ce[1] if j == 0 else cp, c, False, False))
            cpp, cp = cp, 4 * c
            self.out_ke.append(rcb(cp, cp if j + 1 == en_layers else c))
        self.fc = nn.Linear(sum(cg) + (en_layers - 1) * c + cp, classes)

    def forward(self, x):
        gi, ei, eo, rg, re, pt = [], [], [], 0, 0, 0
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1)
            if i + 1 in self.pools:
                gi.append(self.gap_ke[pt](s1))
                for k in range(len(gi) - 1):
                    gi[k] = self.gap_fr[rg](gi[k]); rg += 1
            if i in self.pools:
                ei.append(self.en_ke[pt](s1))
                for k in range(len(ei) - 1):
                    ei[k] = self.en_fr[re](ei[k]); re += 1
                if i == self.pools[-1]:
                    for k in range(len(gi)):
                        gi[k] = self.gap_fr[rg](gi[k]); rg += 1
                pt += 1
        for j, cell in enumerate(self.en_cells):
            s0, s1 = s1, (cell(ei[0], ei[1]) if j == 0 else cell(s0, s1))
            eo.append(self.out_ke[j](s1))
        f = torch.cat(gi + eo, 1).mean((2, 3))
        return self.fc(f)


class DartsEval(nn.Module):
    def __init__(self, g, C=36, layers=20, in_ch=3, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_ch, 3 * C, 3, padding=1, bias=False), nn.BatchNorm2d(3 * C))
        cpp = cp = 3 * C
        c, rp = C, False
        self.cells = nn.ModuleList()
        for i in range(layers):
            red = i in (layers // 3, 2 * layers // 3)
            if red:
                c *= 2
            self.cells.append(Cell(g['reduce' if red else 'normal'], cpp, cp, c, red, rp))
            rp = red
            cpp, cp = cp, 4 * c
        self.fc = nn.Linear(cp, classes)


def count(m):
    return sum(p.numel() for p in m.parameters())


if __name__ == '__main__':
    net = BcnnEval(V1)
    print('BCNN_V1_C48_PARAMS', count(net))
    print('DARTS_V2_C36_PARAMS', count(DartsEval(DARTS_V2)))
    net.eval()
    print('bcnn output', tuple(net(torch.randn(2, 3, 32, 32)).shape))
